"""The member-data columns sealed at rest beside ADR 0039's (ADR 0044), each with the
row key its values are bound to: a value moved to another row or column does not open.
The hot ones (read on every page of a read or an export) and the large ones are binary
columns, sealed as bytes with no base64 (``SealedField.binary``)."""

from __future__ import annotations

from payerbridge.store.sealing import SealedField

__all__ = [
    "BULK_LINE",
    "BULK_REQUEST",
    "CONSENT_RESOURCE",
    "EXCHANGE_PAYLOAD",
    "IDEMPOTENT_BODY",
    "MEMBER_GROUP",
    "ONBOARDING_BUNDLE",
    "QUARANTINED_BODY",
    "RESOURCE_BODY",
    "SOURCE_FILE",
    "SOURCE_FILE_CHUNK",
]

# Every member record the plan holds or received; bound to its ``Type/id``.
RESOURCE_BODY = SealedField("fhir_resources", "body", binary=True)
# A partner's raw answer, kept until normalized; bound to the exchange's id.
EXCHANGE_PAYLOAD = SealedField("exchange_payloads", "body", binary=True)
# A $bulk-member-match result Group (each request's demographics); bound to its id.
MEMBER_GROUP = SealedField("member_groups", "body")
# A bulk job's request as received (the members it asks for); bound to the job's id.
BULK_REQUEST = SealedField("bulk_jobs", "request_body")
# A bulk job's output line (a member's resource as released); bound to ``job|seq``.
BULK_LINE = SealedField("bulk_output_lines", "body", binary=True)
# An onboarding's MemberBundle; bound to ``onboarding|position``.
ONBOARDING_BUNDLE = SealedField("onboarding_members", "bundle")
# A resource a source sent that failed its profile; bound to its quarantine id.
QUARANTINED_BODY = SealedField("quarantined_resources", "body")
# The HRex Consent as presented; bound to the consent's id.
CONSENT_RESOURCE = SealedField("consents", "resource")
# A source's file as received (a roster, claims), kept to map again; bound to its id.
SOURCE_FILE = SealedField("source_files", "body", binary=True)
# A piece of a source's file kept since 0056; bound to ``file|seq``: a piece moved to
# another file or place does not open.
SOURCE_FILE_CHUNK = SealedField("source_file_chunks", "body", binary=True)
# An answer replayed to a retried call; bound to ``client|idempotency key``.
IDEMPOTENT_BODY = SealedField("idempotent_responses", "body")
# (A webhook's body is not sealed: it names the exchange and its states, no member.)
