"""Route modules: fhir (old-payer FHIR API), exchanges (new-payer API), partners, health."""
