"""FHIR R4 wire format: OperationOutcome, CapabilityStatement, resource traversal, HRex shapes."""

from payerbridge.fhir.outcome import operation_outcome, outcome_for

__all__ = ["operation_outcome", "outcome_for"]
