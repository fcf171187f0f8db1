"""Canonical URLs and code systems payerbridge speaks (HRex 1.1 / PDex 2.1 on FHIR R4 4.0.1)."""

__all__ = [
    "CONSENT_DENY_REASON",
    "DATA_EXPORT_OPERATION",
    "PATIENT_EXPORT_OPERATION",
    "PAYER_TO_PAYER_EXPORT",
    "PROVIDER_DELTA_EXPORT",
    "PROVIDER_DOWNLOAD_EXPORT",
    "MEMBER_MATCH_OUTCOME",
    "RECORD_ROLE",
    "CONSENT_POLICY",
    "FHIR_VERSION",
    "HREX_TEMP",
    "MEMBER_MATCH_OPERATION",
    "NPI_SYSTEM",
    "PATIENT_EVERYTHING_OPERATION",
    "V2_0203",
]

FHIR_VERSION = "4.0.1"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HREX_TEMP = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp"
MEMBER_MATCH_OPERATION = "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
DATA_EXPORT_OPERATION = "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export"
PATIENT_EXPORT_OPERATION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
SYSTEM_EXPORT_OPERATION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
GROUP_EXPORT_OPERATION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
# The Bulk Data IG v2.0.0 server capability our CapabilityStatement instantiates.
BULK_DATA_SERVER = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data|2.0.0"
PAYER_TO_PAYER_EXPORT = "hl7.fhir.us.davinci-pdex#payertopayer"
# Provider Access's export types (PDex 2.2): a provider's whole download, and what changed
# since ``_since``. ``provider-snapshot`` is not offered.
PROVIDER_DOWNLOAD_EXPORT = "hl7.fhir.us.davinci-pdex#provider-download"
PROVIDER_DELTA_EXPORT = "hl7.fhir.us.davinci-pdex#provider-delta"
PATIENT_EVERYTHING_OPERATION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
HREX_CONSENT_PROFILE = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-consent"
HREX_COVERAGE_PROFILE = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-coverage"
HREX_PATIENT_PROFILE = (
    "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-patient-demographics"
)
MEMBER_MATCH_IN_PROFILE = (
    "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-parameters-member-match-in"
)
_POLICY_BASE = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html"
# HRex consent policy URIs by our short names.
# Our machine-readable consent deny reasons (``consent.model.DenyReason``) in
# OperationOutcome ``issue.details.coding``.
CONSENT_DENY_REASON = "urn:payerbridge:consent-deny-reason"
# In a $member-match 422: ``review`` says a person at the old payer is looking at the
# match (a case is open), so the new payer waits instead of treating it as final.
MEMBER_MATCH_OUTCOME = "urn:payerbridge:member-match-outcome"
# What a resource is to our record (ADR 0054): "member" tags the Patient we keep for a
# member the plan holds no Patient for; "source" an old payer's Patient kept linked to it.
RECORD_ROLE = "urn:payerbridge:record-role"
CONSENT_POLICY = {"regular": f"{_POLICY_BASE}#regular", "sensitive": f"{_POLICY_BASE}#sensitive"}
PDEX_PROVENANCE_PROFILE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provenance"
PROVENANCE_SOURCE_FORMAT = (
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/ProvenanceSourceFrom"
)
# Our extension on a source Provenance's entity: one defect of the source record that was
# read all the same (an X12 warning, ADR 0056), as text without values. R4's Provenance
# has no note element; an extension on the entity is valid wherever it is read.
SOURCE_WARNING_EXTENSION = "https://payerbridge.dev/fhir/StructureDefinition/source-warning"
PROVENANCE_PAYER_DATA_SOURCE = (
    "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/ProvenancePayerDataSource"
)
US_CORE_PROVENANCE_PARTICIPANT = (
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
)
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
