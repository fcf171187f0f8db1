"""The $member-match use case on the old-payer side: find candidates, decide, hand out the UMB."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from payerbridge.errors import AmbiguousMatch, NoMatch
from payerbridge.fhir import codes
from payerbridge.fhir.member_match import MemberMatchInput, card_from_coverage
from payerbridge.identity.model import MatchOutcome, decide_exact

__all__ = ["MatchedMember", "MemberDirectory", "match_member"]

logger = logging.getLogger(__name__)


class MemberDirectory(Protocol):
    """What matching needs from the member store."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...

    def read_many(self, refs: list[str]) -> list[dict[str, Any]]: ...

    def find_refs_by_token(
        self, resource_type: str, param: str, value: str, system: str | None = None
    ) -> list[str]: ...

    def assign_identifier(self, patient_id: str, identifier: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class MatchedMember:
    member_id: str
    umb_system: str
    umb_value: str
    candidates_considered: int


def _umb_of(patient: dict[str, Any]) -> tuple[str, str] | None:
    for identifier in patient.get("identifier") or []:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(c.get("system") == codes.HREX_TEMP and c.get("code") == "UMB" for c in codings):
            return identifier.get("system") or "", identifier["value"]
    return None


def match_member(
    request: MemberMatchInput,
    directory: MemberDirectory,
    *,
    umb_system: str,
    new_umb: Callable[[], str],
) -> MatchedMember:
    """Match the request to one member or raise NoMatch / AmbiguousMatch (HRex mm-8..10)."""
    card = card_from_coverage(request.coverage_to_match)
    coverage_refs: set[str] = set()
    if card.member_id:
        coverage_refs.update(directory.find_refs_by_token("Coverage", "identifier", card.member_id))
    elif card.subscriber_id:
        coverage_refs.update(
            directory.find_refs_by_token("Coverage", "subscriber-id", card.subscriber_id)
        )
    if not card.member_id and not card.subscriber_id:
        raise NoMatch(
            "no member matched: CoverageToMatch carries neither a member id (identifier "
            "typed MB) nor a subscriberId, which this payer's matcher requires"
        )
    beneficiaries = set()
    for coverage in directory.read_many(sorted(coverage_refs)):
        reference = (coverage.get("beneficiary") or {}).get("reference", "")
        if reference.startswith("Patient/"):
            beneficiaries.add(reference)
    candidates = directory.read_many(sorted(beneficiaries))
    decision = decide_exact(request.patient, candidates)
    logger.info(
        "member-match decided",
        extra={"outcome": decision.outcome.value, "candidates": decision.candidates_considered},
    )
    if decision.outcome is MatchOutcome.NO_MATCH:
        raise NoMatch("no member matched the demographics and coverage in the request")
    if decision.outcome is MatchOutcome.MULTIPLE:
        raise AmbiguousMatch(
            "the request matches more than one member; add the member id from "
            "the insurance card to tell them apart"
        )
    assert decision.member_id is not None
    patient = next(c for c in candidates if c["id"] == decision.member_id)
    umb = _umb_of(patient)
    if umb is None:
        umb = (umb_system, new_umb())
        directory.assign_identifier(
            decision.member_id,
            {
                "type": {"coding": [{"system": codes.HREX_TEMP, "code": "UMB"}]},
                "system": umb[0],
                "value": umb[1],
            },
        )
    return MatchedMember(decision.member_id, umb[0], umb[1], decision.candidates_considered)
