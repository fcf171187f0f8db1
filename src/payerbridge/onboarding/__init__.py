"""Plan-year onboarding (new payer): a file of new members, matched at one old payer with
``$bulk-member-match``, their histories exported with ``$davinci-data-export`` and
imported under our ids with Provenance, durably and chunk by chunk."""
