"""The $member-match use case on the old-payer side: guard, block, decide, record, link.

1. The request (MemberPatient + CoverageToMatch) is standardised like a member.
2. Brute-force guard (HRex mm-7): the same demographics tried by one client
   with more distinct card data than the limit within the window are refused
   (429) and flagged in the audit trail.
3. A request a reviewer already decided is answered from that decision; one
   whose case is still open is answered "under review" again, without a
   second case.
4. Otherwise candidates come from the blocking index, ``decide`` scores them
   with the active model (the untrained prior when none is trained yet) and
   the decision is stored with its evidence; ``review`` opens a case.
5. A match hands out the member's UMB (kept on the Patient and in the identity
   graph) and links the requester's CoverageToLink to the member (mm-4).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import (
    AmbiguousMatch,
    Conflict,
    InvalidInput,
    Issue,
    MatchUnderReview,
    NoMatch,
    NotFound,
    TooManyAttempts,
)
from payerbridge.fhir import codes
from payerbridge.fhir.member_match import MemberMatchInput
from payerbridge.identity.decision import MatchDecision, MatchPolicy, decide
from payerbridge.identity.evidence import DecisionId, MatchOutcome
from payerbridge.identity.graph import IdentityLink, LinkKind, ReviewCase
from payerbridge.identity.records import record_from_fhir
from payerbridge.identity.scoring import MatchModel, default_model
from payerbridge.identity.standardize import StandardRecord
from payerbridge.types import MemberId

__all__ = [
    "AttemptLimit",
    "decision_audit_event",
    "IdentityIndex",
    "MatchedMember",
    "MemberDirectory",
    "ReviewQueue",
    "decide_request",
    "decide_review",
    "merge_members",
    "split_members",
    "survivor",
    "match_member",
    "model_for",
    "request_record",
]

logger = logging.getLogger(__name__)


class MemberDirectory(Protocol):
    """What matching needs from the member store: the Patient, to hand out its UMB."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...

    def assign_identifier(self, patient_id: str, identifier: dict[str, Any]) -> None: ...


class IdentityIndex(Protocol):
    """What matching needs from the identity store."""

    def keys_of(self, record: StandardRecord) -> frozenset[str]: ...

    def keyed_hash(self, *parts: str | None) -> str: ...

    def candidates(
        self, keys: Sequence[str] | frozenset[str]
    ) -> list[tuple[MemberId, StandardRecord]]: ...  # fmt: skip

    def member_count(self) -> int: ...

    def active_model(self) -> MatchModel | None: ...

    def record_decision(
        self,
        decision: MatchDecision,
        *,
        client_id: str,
        request_key: str,
        review_id: str | None,
        event: AuditEvent | None = None,
    ) -> None: ...  # fmt: skip

    def latest_review(self, client_id: str, request_key: str) -> ReviewCase | None: ...

    def note_attempt(
        self,
        *,
        client_id: str,
        demographics_key: str,
        card_key: str,
        at: datetime,
        window: timedelta,
    ) -> int: ...  # fmt: skip

    def record_links(self, links: Sequence[IdentityLink]) -> None: ...

    def merged_into(self, member_ids: Iterable[str]) -> dict[str, str]: ...


class ReviewQueue(Protocol):
    """What deciding a review case needs from the identity store."""

    def review(self, review_id: str) -> ReviewCase | None: ...

    def decide_review(
        self,
        review_id: str,
        *,
        accept: bool,
        member_id: str | None,
        reviewer: str,
        reason: str,
        at: datetime,
        event: Callable[[ReviewCase], AuditEvent],
        links: Callable[[ReviewCase], Sequence[IdentityLink]],
    ) -> ReviewCase: ...  # fmt: skip


@dataclass(frozen=True)
class AttemptLimit:
    """At most ``cards`` distinct card data per client and demographics per ``window``."""

    cards: int
    window: timedelta


@dataclass(frozen=True)
class MatchedMember:
    member_id: str
    umb_system: str
    umb_value: str
    candidates_considered: int
    decision_id: str


def decision_audit_event(
    decision: MatchDecision, *, actor: str, request_id: str | None
) -> AuditEvent:
    """The audit event of a match decision: ids, outcome and versions, no demographics."""
    evidence = decision.evidence
    return AuditEvent(
        at=evidence.decided_at,
        actor=actor,
        action="identity.decision",
        entity_type="IdentityDecision",
        entity_id=decision.decision_id,
        outcome=decision.outcome.value,
        request_id=request_id,
        detail={
            "member": decision.member_id,
            "candidates": list(decision.candidate_ids),
            "reason": evidence.reason.value,
            "rule": evidence.rule,
            "candidates_considered": evidence.candidates_considered,
            "model_version": evidence.model_version,
            "policy_version": evidence.policy_version,
        },
    )


def request_record(request: MemberMatchInput) -> StandardRecord:
    """The request as matching sees it: MemberPatient's demographics, CoverageToMatch's card.

    MemberPatient's own identifiers are the requesting payer's, never our member id."""
    return record_from_fhir(request.patient, request.coverage_to_match,
                            member_id_from_patient=False)  # fmt: skip


def model_for(index: IdentityIndex) -> MatchModel:
    """The active trained model, else the prior for a population of this size."""
    model = index.active_model()
    if model is not None:
        return model
    return _prior(max(index.member_count(), 2))


@functools.lru_cache(maxsize=8)
def _prior(members: int) -> MatchModel:
    return default_model(probability_two_random_records_match=1 / members)


def decide_request(
    index: IdentityIndex,
    record: StandardRecord,
    model: MatchModel,
    policy: MatchPolicy,
    at: datetime,
    decision_id: DecisionId,
) -> MatchDecision:
    """Decide among the request's blocking candidates. A member merged into another is a
    duplicate record of the survivor, so it is not a candidate."""
    candidates = index.candidates(index.keys_of(record))
    retired = index.merged_into(member for member, _ in candidates)
    current = [(member, found) for member, found in candidates if member not in retired]
    return decide(record, current, model, policy, at, decision_id)


def _request_key(index: IdentityIndex, record: StandardRecord) -> str:
    return index.keyed_hash(
        record.first_name, record.family_name, record.birth_date, record.sex, record.member_id,
        record.subscriber_id, record.postal_code, record.phone, record.ssn,
    )  # fmt: skip


def match_member(
    request: MemberMatchInput,
    index: IdentityIndex,
    directory: MemberDirectory,
    *,
    client_id: str,
    requester_npi: str | None,
    policy: MatchPolicy,
    attempts: AttemptLimit,
    at: datetime,
    new_id: Callable[[], str],
    umb_system: str,
    audit: Callable[[MatchDecision], AuditEvent],
) -> MatchedMember:
    """Match the request to one member or raise NoMatch / AmbiguousMatch / MatchUnderReview
    (all 422, HRex mm-8..10) or TooManyAttempts (429, mm-7).

    ``audit`` gives the decision's audit event, stored in the decision's transaction."""
    record = request_record(request)
    tried = index.note_attempt(
        client_id=client_id,
        demographics_key=index.keyed_hash(
            record.first_name, record.family_name, record.birth_date
        ),  # fmt: skip
        card_key=index.keyed_hash(record.member_id, record.subscriber_id),
        at=at,
        window=attempts.window,
    )
    if tried > attempts.cards:
        logger.warning(
            "member-match attempts over the limit",
            extra={"client_id": client_id, "cards_tried": tried},
        )
        raise TooManyAttempts(
            f"this client tried the same member's demographics with {tried} different cards "
            f"within {int(attempts.window.total_seconds() // 60)} minutes; further attempts are "
            "refused for a while (HRex mm-7). Send the card data the member gave you."
        )
    request_key = _request_key(index, record)
    reviewed = index.latest_review(client_id, request_key)
    if reviewed is not None and reviewed.status != "accepted":
        _answer_reviewed(reviewed)
    if reviewed is not None:
        assert reviewed.member_id is not None
        member_id = survivor(index, reviewed.member_id)
        return _matched(request, index, directory, member_id, client_id=client_id,
                        requester_npi=requester_npi, decision_id=reviewed.decision_id,
                        candidates=len(reviewed.candidate_ids), at=at, umb_system=umb_system,
                        new_umb=new_id)  # fmt: skip
    decision = decide_request(index, record, model_for(index), policy, at, DecisionId(new_id()))
    review_id = new_id() if decision.outcome is MatchOutcome.REVIEW else None
    index.record_decision(decision, client_id=client_id, request_key=request_key,
                          review_id=review_id, event=audit(decision))  # fmt: skip
    logger.info(
        "member-match decided",
        extra={"decision_id": decision.decision_id, "outcome": decision.outcome.value,
               "candidates": decision.evidence.candidates_considered},
    )  # fmt: skip
    _raise_unless_match(decision, review_id)
    assert decision.member_id is not None
    return _matched(request, index, directory, decision.member_id, client_id=client_id,
                    requester_npi=requester_npi, decision_id=decision.decision_id,
                    candidates=decision.evidence.candidates_considered, at=at,
                    umb_system=umb_system, new_umb=new_id)  # fmt: skip


def _answer_reviewed(case: ReviewCase) -> None:
    if case.status == "open":
        raise MatchUnderReview(
            f"this request is waiting for a reviewer (review case {case.id}); send it again "
            "after the case is decided",
            decision_id=case.decision_id,
            review_id=case.id,
        )
    raise NoMatch(
        f"a reviewer found that no member matches this request (review case {case.id})",
        decision_id=case.decision_id,
    )


def _raise_unless_match(decision: MatchDecision, review_id: str | None) -> None:
    where = f"(decision {decision.decision_id})"
    if decision.outcome is MatchOutcome.NO_MATCH:
        raise NoMatch(
            f"no member matched the demographics and coverage in the request {where}",
            decision_id=decision.decision_id,
        )
    if decision.outcome is MatchOutcome.MULTIPLE:
        raise AmbiguousMatch(
            "the request fits more than one member; add the member id from the insurance "
            f"card to tell them apart {where}",
            decision_id=decision.decision_id,
        )
    if decision.outcome is MatchOutcome.REVIEW:
        raise MatchUnderReview(
            "the request fits a member only on evidence a person must confirm; review case "
            f"{review_id} is open: send the request again after it is decided {where}",
            decision_id=decision.decision_id,
            review_id=review_id,
        )


def _umb_of(patient: dict[str, Any]) -> tuple[str, str] | None:
    for identifier in patient.get("identifier") or []:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(c.get("system") == codes.HREX_TEMP and c.get("code") == "UMB" for c in codings):
            return identifier.get("system") or "", identifier["value"]
    return None


def _matched(
    request: MemberMatchInput,
    index: IdentityIndex,
    directory: MemberDirectory,
    member_id: str,
    *,
    client_id: str,
    requester_npi: str | None,
    decision_id: str,
    candidates: int,
    at: datetime,
    umb_system: str,
    new_umb: Callable[[], str],
) -> MatchedMember:
    patient = directory.read("Patient", member_id)
    if patient is None:  # deleted since it was indexed
        raise NoMatch(f"the matched member is no longer on file (decision {decision_id})",
                      decision_id=decision_id)  # fmt: skip
    umb = _umb_of(patient)
    if umb is None:
        umb = (umb_system, new_umb().replace("-", ""))
        directory.assign_identifier(
            member_id,
            {
                "type": {"coding": [{"system": codes.HREX_TEMP, "code": "UMB"}]},
                "system": umb[0],
                "value": umb[1],
            },
        )

    def link(kind: str, system: str, value: str, assigner: str | None) -> IdentityLink:
        return IdentityLink(member_id, kind, system, value, assigner, decision_id, client_id, at)

    links = [link(LinkKind.UMB, umb[0], umb[1], None)]
    if request.coverage_to_link is not None:
        links.extend(_coverage_links(request.coverage_to_link, requester_npi, link))
    index.record_links(links)
    return MatchedMember(member_id, umb[0], umb[1], candidates, decision_id)


def _coverage_links(
    coverage: dict[str, Any],
    requester_npi: str | None,
    link: Callable[[str, str, str, str | None], IdentityLink],
) -> list[IdentityLink]:
    """The requesting payer's member id and subscriber id for our member (HRex mm-4)."""
    assigner = f"{codes.NPI_SYSTEM}|{requester_npi}" if requester_npi else None
    links = []
    for identifier in coverage.get("identifier") or []:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if isinstance(value, str) and value:
            links.append(link(LinkKind.LINKED_COVERAGE, identifier.get("system") or "", value,
                              assigner))  # fmt: skip
    subscriber = coverage.get("subscriberId")
    if isinstance(subscriber, str) and subscriber:
        links.append(link(LinkKind.LINKED_SUBSCRIBER, "", subscriber, assigner))
    return links


def decide_review(
    queue: ReviewQueue,
    review_id: str,
    *,
    accept: bool,
    member_id: str | None,
    reviewer: str,
    reason: str,
    at: datetime,
    request_id: str | None,
) -> ReviewCase:
    """Accept (naming one of the case's candidates) or reject an open case, audited.

    An accepted case links the request to the member in the identity graph, and the
    requester's next identical ``$member-match`` is answered with that member."""
    case = queue.review(review_id)
    if case is None:
        raise NotFound(f"no review case {review_id}")
    if accept and member_id not in case.candidate_ids:
        raise InvalidInput(
            "accepting a case names the member, one of its candidates",
            issues=[Issue(f"member must be one of: {', '.join(case.candidate_ids)}", "member",
                          "required" if member_id is None else "value")],
        )  # fmt: skip
    if not accept and member_id is not None:
        raise InvalidInput(
            "a rejected case names no member",
            issues=[Issue("leave out member when rejecting a case", "member")],
        )

    def event(decided: ReviewCase) -> AuditEvent:
        return AuditEvent(
            at=at,
            actor=reviewer,
            action="identity.review",
            entity_type="IdentityReview",
            entity_id=decided.id,
            outcome=decided.status,
            request_id=request_id,
            detail={"decision": decided.decision_id, "member": decided.member_id},
        )

    def links(decided: ReviewCase) -> list[IdentityLink]:
        if decided.member_id is None:
            return []
        return [IdentityLink(decided.member_id, LinkKind.REVIEWED_REQUEST,
                             LinkKind.MATCH_REQUEST_SYSTEM, decided.request_key,
                             decided.client_id, decided.decision_id, reviewer, at)]  # fmt: skip

    return queue.decide_review(
        review_id, accept=accept, member_id=member_id, reviewer=reviewer, reason=reason, at=at,
        event=event, links=links,
    )  # fmt: skip


def survivor(index: IdentityIndex, member_id: str) -> str:
    """The member a (possibly merged) member id means now, following merges."""
    seen = {member_id}
    while (into := index.merged_into([member_id]).get(member_id)) is not None:
        if into in seen:  # a cycle cannot be written (see merge_members); stop if one is read
            break
        seen.add(into)
        member_id = into
    return member_id


class MergeLedger(Protocol):
    """What merging and splitting members needs from the identity store."""

    def merged_into(self, member_ids: Iterable[str]) -> dict[str, str]: ...

    def change_merge(
        self,
        *,
        member_id: str,
        into: str | None,
        at: datetime,
        event: AuditEvent,
        link: IdentityLink | None,
    ) -> None: ...  # fmt: skip


def _merge_event(
    action: str, member_id: str, into: str, by: str, at: datetime, request_id: str | None
) -> AuditEvent:
    return AuditEvent(at=at, actor=by, action=action, entity_type="Patient", entity_id=member_id,
                      outcome="success", request_id=request_id, detail={"into": into})  # fmt: skip


def merge_members(
    ledger: MergeLedger,
    directory: MemberDirectory,
    member_id: str,
    into: str,
    *,
    by: str,
    at: datetime,
    request_id: str | None,
) -> IdentityLink:
    """Record that ``member_id`` is a duplicate of ``into`` from ``at`` on (audited).

    Matching then answers with ``into``; the retired id stays in the graph with its
    lineage, and ``split_members`` undoes the merge from a later instant."""
    if member_id == into:
        raise InvalidInput("a member cannot be merged into itself",
                           issues=[Issue("into must name another member", "into")])  # fmt: skip
    for name, value in (("member", member_id), ("into", into)):
        if directory.read("Patient", value) is None:
            raise NotFound(f"no member {value} ({name})")
    current = ledger.merged_into([member_id, into])
    if member_id in current:
        raise Conflict(f"member {member_id} is already merged into {current[member_id]}")
    if into in current:
        raise InvalidInput(
            f"member {into} is itself merged into {current[into]}; merge into that member",
            issues=[Issue("into must be a member that is not merged", "into")],
        )
    link = IdentityLink(member_id, LinkKind.MERGED_INTO, LinkKind.MEMBER_SYSTEM, into, None,
                        None, by, at)  # fmt: skip
    ledger.change_merge(member_id=member_id, into=None, at=at, link=link,
                        event=_merge_event("identity.merge", member_id, into, by, at,
                                           request_id))  # fmt: skip
    return link


def split_members(
    ledger: MergeLedger, member_id: str, *, by: str, at: datetime, request_id: str | None
) -> str:
    """End ``member_id``'s merge from ``at`` on (audited); returns the member it left."""
    into = ledger.merged_into([member_id]).get(member_id)
    if into is None:
        raise NotFound(f"member {member_id} is not merged into another member")
    ledger.change_merge(member_id=member_id, into=into, at=at, link=None,
                        event=_merge_event("identity.split", member_id, into, by, at,
                                           request_id))  # fmt: skip
    return into
