"""The plan's own systems as sources: what a source holds and answers (``model``,
``ports``), the declarative mappings that turn a backend's records into FHIR
(``mapping``), the readers of its formats (X12, NCPDP D.0, CSV, fixed-width, FHIR), and the
quarantine of what fails its profile. Pure: the adapters that reach a backend live in
``payerbridge.sources``."""
