"""Demographics as matching reads them: a member's or a request's FHIR (``records``) and
raw values (``standardize``, with ``addresses`` and ``nicknames``) into the
``identity.model.StandardRecord`` that blocking and matching compare. Pure."""

from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.demographics.standardize import Demographics, standard_record

__all__ = ["Demographics", "record_from_fhir", "standard_record"]
