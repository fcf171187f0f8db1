"""The vocabulary of ids: each kind of id has its own type, never a bare ``str`` in a signature."""

from typing import NewType

__all__ = [
    "OPERATOR",
    "BulkJobId",
    "ClientId",
    "ExchangeId",
    "MemberId",
    "OnboardingId",
    "PartnerId",
    "RequestId",
    "ResourceId",
    "ResourceType",
    "WorkerId",
]

ResourceType = NewType("ResourceType", str)
ResourceId = NewType("ResourceId", str)
# The FHIR id of a member's Patient resource in our own store.
MemberId = NewType("MemberId", str)
PartnerId = NewType("PartnerId", str)
ExchangeId = NewType("ExchangeId", str)
RequestId = NewType("RequestId", str)
ClientId = NewType("ClientId", str)
# A bulk job's id (``$bulk-member-match`` or an export): its status URL and workflow id.
BulkJobId = NewType("BulkJobId", str)
# A member onboarding's id (a batch of members brought over from their old payer).
OnboardingId = NewType("OnboardingId", str)
# A process that runs workflows (DBOS's executor id): stable across its restarts.
WorkerId = NewType("WorkerId", str)

# The owner of what operators create (a webhook told of every exchange): operators are
# clients with the operator scope, and they share what they create.
OPERATOR = ClientId("operator")
