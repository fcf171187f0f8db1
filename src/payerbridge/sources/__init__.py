"""Adapters that reach the plan's own systems at request time (live sources): its
existing FHIR R4 server, read as a SMART Backend Services client within a budget."""

from payerbridge.sources.fhir_server import FhirServerSource
from payerbridge.sources.settings import PER_TYPE_SCOPE, FhirServerSettings, read_private_key

__all__ = ["PER_TYPE_SCOPE", "FhirServerSettings", "FhirServerSource", "read_private_key"]
