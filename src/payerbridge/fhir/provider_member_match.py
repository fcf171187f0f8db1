"""PDex 2.2 ``Group/$provider-member-match`` (Provider Access): the result Groups.

The request is ``$bulk-member-match``'s (``bulk_member_match``: one MemberBundle per
member, MemberPatient, CoverageToMatch and a Consent), whose Consent is the provider's
treatment attestation (``provider-treatment-relationship-consent``). The answer's Groups
are shaped as ``$bulk-member-match``'s, under the provider profiles:
MatchedMembers ``pdex-provider-member-match``, NonMatchedMembers
``pdex-provider-member-no-match``, and ConsentConstrainedMembers the member opt-out
Group (``pdex-member-opt-out``): its characteristic says the opt-out's scope, never its
reason or when it was made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from payerbridge.fhir.bulk_member_match import (
    RESULT_SYSTEM,
    GroupAnswer,
    MatchResult,
    MemberResult,
    profiled_groups,
)
from payerbridge.routing.model import Organization

__all__ = [
    "OPT_OUT_GROUP_PROFILE",
    "PROVIDER_MATCH_PROFILE",
    "PROVIDER_MEMBER_MATCH_OPERATION",
    "is_provider_match_group",
    "provider_result_groups",
]

_PDEX = "http://hl7.org/fhir/us/davinci-pdex"
PROVIDER_MEMBER_MATCH_OPERATION = f"{_PDEX}/OperationDefinition/ProviderMemberMatch"
PROVIDER_MATCH_PROFILE = f"{_PDEX}/StructureDefinition/pdex-provider-member-match"
_PROVIDER_NO_MATCH_PROFILE = f"{_PDEX}/StructureDefinition/pdex-provider-member-no-match"
OPT_OUT_GROUP_PROFILE = f"{_PDEX}/StructureDefinition/pdex-member-opt-out"
_OPT_OUT_SCOPE = f"{_PDEX}/CodeSystem/opt-out-scope"
_PROFILES = {
    MatchResult.MATCHED: PROVIDER_MATCH_PROFILE,
    MatchResult.NOT_MATCHED: _PROVIDER_NO_MATCH_PROFILE,
    MatchResult.CONSENT_CONSTRAINED: OPT_OUT_GROUP_PROFILE,
}


def is_provider_match_group(body: Mapping[str, Any]) -> bool:
    """Whether a stored result Group is a ``$provider-member-match``'s MatchedMembers:
    exported as Provider Access, never as payer-to-payer."""
    profiles = (body.get("meta") or {}).get("profile") or ()
    return PROVIDER_MATCH_PROFILE in profiles


def _as_opt_out(group: dict[str, Any], matched_at: datetime) -> dict[str, Any]:
    """ConsentConstrainedMembers as ``pdex-member-opt-out`` has it: active, its
    characteristic the opt-out's scope (``global``: which providers a member's opt-out
    reaches is hers to tell, not the answer's)."""
    coding = {
        "system": RESULT_SYSTEM,
        "code": MatchResult.CONSENT_CONSTRAINED.value,
        "display": "Consent Constraint",
    }
    group["active"] = True
    group["characteristic"] = [
        {
            "code": {"coding": [coding]},
            "valueCodeableConcept": {"coding": [{"system": _OPT_OUT_SCOPE, "code": "global"}]},
            "exclude": False,
            "period": {"start": matched_at.date().isoformat()},
        }
    ]
    return group


def provider_result_groups(
    results: Sequence[MemberResult],
    *,
    group_ids: Mapping[MatchResult, str],
    requester: Organization,
    us: Organization,
    matched_at: datetime,
) -> list[dict[str, Any]]:
    """The answer's Groups (see the module), MatchedMembers always."""
    answer = GroupAnswer(requester, us, matched_at)
    groups = profiled_groups(results, group_ids, answer, _PROFILES)
    return [
        _as_opt_out(g, matched_at)
        if g["code"]["coding"][0]["code"] == MatchResult.CONSENT_CONSTRAINED.value
        else g
        for g in groups
    ]
