"""Plan-year onboarding (new payer): a file of new members, matched at one old payer with
``$bulk-member-match``, their histories exported with ``$davinci-data-export`` and
imported under our ids with Provenance, durably and chunk by chunk."""

from payerbridge.onboarding.model import Onboarding, OnboardingStatus
from payerbridge.onboarding.service import accept_onboarding, proceed
from payerbridge.onboarding.unit import OnboardingUnit

__all__ = ["Onboarding", "OnboardingStatus", "OnboardingUnit", "accept_onboarding", "proceed"]
