"""The $member-match use case on the old-payer side: guard, block, decide, record, link.

1. The request (MemberPatient + CoverageToMatch) is standardised like a member.
2. A request a reviewer already decided is answered from that decision; one
   whose case is still open is answered "under review" again, without a
   second case.
3. Otherwise candidates come from the blocking index, ``decide`` scores them
   with the active model (the untrained prior when none is trained yet) and
   the decision is stored with its evidence; ``review`` opens a case.
4. A match hands out the member's UMB (kept on the Patient and in the identity
   graph) and links the requester's CoverageToLink to the member (mm-4).
5. Brute-force guard (HRex mm-7, ``guard``): every attempt is recorded, bulk ones
   too; the same demographics tried by one client with more distinct card data
   than the limit within the window are refused (429), and nothing else is written.
   Within the limit, a card that only a reviewer could match, for demographics the
   client tried with another card, is a guess: no decision, no case, no match (422).

``match_member(command, unit, index)`` runs in the caller's unit of work: reading and
deciding come first; everything a match writes (the attempt, the decision with its
evidence and audit event, a review case, the UMB, the links and the answer's audit
event) then commits with the unit, or not at all. A refusal is returned, not raised, so
that the attempt it counted commits too.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.refusals import DEFAULT_WINDOW
from payerbridge.consent.model import PresentedConsent, Requester
from payerbridge.errors import (
    AmbiguousMatch,
    Conflict,
    InvalidInput,
    Issue,
    MatchError,
    MatchUnderReview,
    NoMatch,
    NotFound,
    TooManyAttempts,
    UnprocessableRequest,
)
from payerbridge.fhir import codes
from payerbridge.fhir.member_match import MemberMatchInput
from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.guard import (
    AttemptLimit,
    CardTry,
    is_wrong_card_guess,
    note_attempt,
    too_many_attempts,
    wrong_card_guess,
)
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.decision import Matcher, MatchPolicy, decide
from payerbridge.identity.matching.model import DecisionId, MatchDecision, MatchOutcome, StoredModel
from payerbridge.identity.matching.population import MemberSample, fit_population
from payerbridge.identity.matching.scoring import MatchModel, default_model
from payerbridge.identity.matching.spec import DEFAULT_SPEC
from payerbridge.identity.model import (
    IdentityLink,
    LinkKind,
    ReviewCase,
    ReviewOpening,
    StandardRecord,
)
from payerbridge.identity.ports import (
    DecisionToRecord,
    IdentityIndex,
    MatchWrites,
)
from payerbridge.identity.review_queue import review_opening
from payerbridge.identity.unit import IdentityUnit
from payerbridge.logging import log_on_request
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, MemberId

__all__ = [
    "AttemptLimit",
    "answer_audit_event",
    "decision_audit_event",
    "MatchedMember",
    "MemberMatchCommand",
    "MemberMatchRules",
    "BatchTerms",
    "decide_for_batch",
    "decide_many_for_batch",
    "decide_request",
    "MergeMembers",
    "SplitMember",
    "TrainModel",
    "merge_members",
    "record_batch_decisions",
    "split_members",
    "survivor",
    "match_member",
    "model_for",
    "request_record",
    "DEFAULT_TRAINING_SAMPLE",
    "train_on_members",
    "TrainedModel",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchedMember:
    member_id: MemberId
    umb_system: str
    umb_value: str
    candidates_considered: int
    decision_id: str


@dataclass(frozen=True)
class MemberMatchRules:
    """The deployment's matching policy, brute-force guard, our NPI (the discloser
    consents name), the system of the UMBs we hand out, and the window refused calls are
    counted in (ADR 0045)."""

    policy: MatchPolicy
    attempts: AttemptLimit
    source_npi: str
    umb_system: str
    refusal_window: timedelta = DEFAULT_WINDOW


@dataclass(frozen=True)
class MemberMatchCommand:
    """One ``$member-match`` as asked: the request and the Consent presented with it (if
    any), who asks and under which rules, and the ids its audit events carry."""

    request: MemberMatchInput
    presented: PresentedConsent | None
    requester: Requester
    rules: MemberMatchRules
    request_id: str | None = None
    idempotency_key: str | None = None


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


def answer_audit_event(
    answer: MatchedMember | MatchError,
    command: MemberMatchCommand,
    *,
    at: datetime,
    reviewed: ReviewCase | None = None,
) -> AuditEvent:
    """The audit event of a ``$member-match`` answer (``member-match``): the member and
    the decision, or the refusal's kind; the Idempotency-Key it was asked under, if any.
    An answer a reviewer's decision gave (``reviewed``, a case no longer open) says so
    (``via``, the case's outcome and match policy): the metrics count it as the
    reviewer's decision."""
    if isinstance(answer, MatchError):
        member_id, outcome = "-", type(answer).__name__
        detail: dict[str, Any] = {"decision": answer.decision_id}
    else:
        member_id, outcome = answer.member_id, "match"
        detail = {"candidates": answer.candidates_considered, "decision": answer.decision_id}
    if reviewed is not None and not reviewed.is_open:
        policy = reviewed.policy or command.rules.policy.name
        detail |= {"via": "review", "review": reviewed.status, "policy": policy}
    return AuditEvent(
        at=at,
        actor=command.requester.client_id,
        action="member-match",
        entity_type="Patient",
        entity_id=member_id,
        outcome=outcome,
        request_id=command.request_id,
        detail={**detail, "idempotency_key": command.idempotency_key},
    )


def request_record(request: MemberMatchInput) -> StandardRecord:
    """The request as matching sees it: MemberPatient's demographics, CoverageToMatch's card.

    MemberPatient's own identifiers are the requesting payer's, never our member id."""
    return record_from_fhir(
        request.patient, request.coverage_to_match, member_id_from_patient=False
    )


def model_for(index: IdentityIndex) -> MatchModel:
    """The active trained model, else the prior for a population of this size."""
    model = trained_model(index)
    if model is not None:
        return model
    return _prior(max(index.member_count(), 2))


def trained_model(index: IdentityIndex) -> MatchModel | None:
    """The active model trained under the comparison spec this code runs, if any."""
    stored = index.active_model(DEFAULT_SPEC.fingerprint)
    return None if stored is None else _model_from_json(stored.body)


@functools.lru_cache(maxsize=4)
def _model_from_json(body: str) -> MatchModel:
    """A stored model parsed once: the store hands back the same text while it caches it."""
    return MatchModel.from_json(body)


def stored_model(model: MatchModel, *, trained_on: int, summary: dict[str, Any]) -> StoredModel:
    """The model as the store keeps it."""
    return StoredModel(model.version, model.spec.fingerprint, model.to_json(), trained_on, summary)


@functools.lru_cache(maxsize=8)
def _prior(members: int) -> MatchModel:
    return default_model(probability_two_random_records_match=1 / members)


def decide_request(
    index: IdentityIndex,
    record: StandardRecord,
    matcher: Matcher,
    at: datetime,
    decision_id: DecisionId,
) -> MatchDecision:
    """Decide among the request's blocking candidates (the index leaves out a member merged
    into another: a duplicate record of the survivor)."""
    return decide(
        record,
        index.candidates(blocking_keys(record, secret=index.blocking_secret)),
        matcher,
        at,
        decision_id,
    )


def _request_key(index: IdentityIndex, record: StandardRecord) -> str:
    return index.keyed_hash(
        record.first_name,
        record.family_name,
        record.birth_date,
        record.sex,
        record.member_id,
        record.subscriber_id,
        record.postal_code,
        record.phone,
        record.ssn,
    )


@dataclass(frozen=True)
class _Target:
    """The member a request is answered with, before the UMB is handed out."""

    member_id: MemberId
    decision_id: str
    candidates: int


def match_member(
    command: MemberMatchCommand, unit: UnitOfWork, index: IdentityIndex
) -> MatchedMember | MatchError | TooManyAttempts:
    """Match the request to one member in ``unit``, or say why not: NoMatch /
    AmbiguousMatch / MatchUnderReview (all 422, HRex mm-8..10), WrongCardGuess (a
    NoMatch) or TooManyAttempts (429, mm-7). Every answer is returned, not raised: the
    attempt it counted commits with the unit, a refusal's too.

    Reading and deciding come before the unit's first write (its transaction begins
    there); the decision is stamped ``unit.now``. The decision's audit event and the
    answer's are recorded on the unit; an attempt over the limit, or a wrong-card guess,
    writes nothing else (the caller counts it, ``audit.refusals``)."""
    request, client_id, at = command.request, command.requester.client_id, unit.now
    record = request_record(request)
    request_key = _request_key(index, record)
    decision: MatchDecision | None = None
    review: ReviewOpening | None = None
    reviewed = index.latest_review(client_id, request_key)
    if reviewed is not None:
        outcome = _reviewed(index, reviewed)
    else:
        policy = command.rules.policy
        decision = decide_request(
            index, record, Matcher(model_for(index), policy), at, DecisionId(unit.new_id())
        )
        review = _opening(unit.new_id, record, decision)
        outcome = _decided(decision, None if review is None else review.id)
    writes = index.match_writes(unit)
    limit = command.rules.attempts
    attempt = note_attempt(index, writes, CardTry(client_id, record, at), limit)
    if attempt.is_over:
        return too_many_attempts(client_id, attempt, at)
    if decision is not None and is_wrong_card_guess(attempt, decision.outcome):
        return wrong_card_guess()
    if decision is not None:
        event = decision_audit_event(decision, actor=client_id, request_id=command.request_id)
        writes.record_decision(
            decision, client_id=client_id, request_key=request_key, review=review, event=event
        )
        log_on_request(
            logger,
            "member-match decided",
            decision_id=decision.decision_id,
            outcome=decision.outcome.value,
            candidates=decision.evidence.candidates_considered,
        )
    answer = (
        outcome
        if isinstance(outcome, MatchError)
        else _hand_out(writes, command, outcome, at=at, new_umb=unit.new_id)
    )
    unit.record(answer_audit_event(answer, command, at=at, reviewed=reviewed))
    return answer


def _opening(
    new_id: Callable[[], str], record: StandardRecord, decision: MatchDecision
) -> ReviewOpening | None:
    """The case a ``review`` decision opens, with the request its reviewer compares."""
    if decision.outcome is not MatchOutcome.REVIEW:
        return None
    return review_opening(new_id(), record, decision.evidence, decision.candidate_ids)


def _reviewed(index: IdentityIndex, case: ReviewCase) -> _Target | MatchError:
    """The answer to a request a reviewer has seen: the member accepted (or the member it
    was merged into since), else under review or no match."""
    if case.status == "open":
        return MatchUnderReview(
            f"this request is waiting for a reviewer (review case {case.id}); send it again "
            "after the case is decided",
            decision_id=case.decision_id,
            review_id=case.id,
        )
    if case.status != "accepted" or case.member_id is None:
        return NoMatch(
            f"a reviewer found that no member matches this request (review case {case.id})",
            decision_id=case.decision_id,
        )
    member_id = survivor(index, case.member_id)
    return _Target(member_id, case.decision_id, len(case.candidate_ids))


def _decided(decision: MatchDecision, review_id: str | None) -> _Target | MatchError:
    where = f"(decision {decision.decision_id})"
    if decision.outcome is MatchOutcome.MATCH:
        assert decision.member_id is not None
        return _Target(
            decision.member_id, decision.decision_id, decision.evidence.candidates_considered
        )
    if decision.outcome is MatchOutcome.MULTIPLE:
        return AmbiguousMatch(
            "the request fits more than one member; add the member id from the insurance "
            f"card to tell them apart {where}",
            decision_id=decision.decision_id,
        )
    if decision.outcome is MatchOutcome.REVIEW:
        return MatchUnderReview(
            "the request fits a member only on evidence a person must confirm; review case "
            f"{review_id} is open: send the request again after it is decided {where}",
            decision_id=decision.decision_id,
            review_id=review_id,
        )
    return NoMatch(
        f"no member matched the demographics and coverage in the request {where}",
        decision_id=decision.decision_id,
    )


def _umb_of(patient: dict[str, Any]) -> tuple[str, str] | None:
    for identifier in patient.get("identifier") or []:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(c.get("system") == codes.HREX_TEMP and c.get("code") == "UMB" for c in codings):
            return identifier.get("system") or "", identifier["value"]
    return None


def _hand_out(
    writes: MatchWrites,
    command: MemberMatchCommand,
    target: _Target,
    *,
    at: datetime,
    new_umb: Callable[[], str],
) -> MatchedMember | NoMatch:
    """The member's UMB (handed out now if it has none) and the graph links of the match."""
    member_id, decision_id = target.member_id, target.decision_id
    client_id, umb_system = command.requester.client_id, command.rules.umb_system
    patient = writes.patient(member_id)
    if patient is None:  # deleted since it was indexed
        return NoMatch(
            f"the matched member is no longer on file (decision {decision_id})",
            decision_id=decision_id,
        )
    umb = _umb_of(patient)
    if umb is None:
        umb = (umb_system, new_umb().replace("-", ""))
        identifier = {
            "type": {"coding": [{"system": codes.HREX_TEMP, "code": "UMB"}]},
            "system": umb[0],
            "value": umb[1],
        }
        writes.assign_identifier(patient, identifier, at=at)

    def link(kind: str, system: str, value: str, assigner: str | None) -> IdentityLink:
        return IdentityLink(member_id, kind, system, value, assigner, decision_id, client_id, at)

    links = [link(LinkKind.UMB, umb[0], umb[1], None)]
    to_link = command.request.coverage_to_link
    if to_link is not None:
        links.extend(_coverage_links(to_link, command.requester.npi, link))
    writes.add_links(links)
    return MatchedMember(member_id, umb[0], umb[1], target.candidates, decision_id)


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
            links.append(
                link(LinkKind.LINKED_COVERAGE, identifier.get("system") or "", value, assigner)
            )
    subscriber = coverage.get("subscriberId")
    if isinstance(subscriber, str) and subscriber:
        links.append(link(LinkKind.LINKED_SUBSCRIBER, "", subscriber, assigner))
    return links


def record_batch_decisions(decisions: Sequence[DecisionToRecord], uow: IdentityUnit) -> None:
    """A chunk of bulk-matching decisions, their review cases and audit events, in one
    transaction."""
    if not decisions:
        return
    with uow:
        uow.identity.record_decisions(uow, decisions)
        uow.record(*(decision.event for decision in decisions))


def survivor(index: IdentityIndex, member_id: MemberId) -> MemberId:
    """The member a (possibly merged) member id means now, following merges."""
    seen = {member_id}
    while (into := index.merged_into([member_id]).get(member_id)) is not None:
        if into in seen:  # a cycle cannot be written (see merge_members); stop if one is read
            break
        seen.add(into)
        member_id = into
    return member_id


@dataclass(frozen=True)
class MergeMembers:
    """An operator's merge: ``member_id`` is a duplicate of ``into`` (``by``: who says so)."""

    member_id: MemberId
    into: MemberId
    by: str
    request_id: str | None


@dataclass(frozen=True)
class SplitMember:
    """An operator's split: ``member_id`` is its own member again."""

    member_id: MemberId
    by: str
    request_id: str | None


def _merge_event(action: str, change: MergeMembers, at: datetime) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=change.by,
        action=action,
        entity_type="Patient",
        entity_id=change.member_id,
        outcome="success",
        request_id=change.request_id,
        detail={"into": change.into},
    )


def merge_members(command: MergeMembers, uow: IdentityUnit) -> IdentityLink:
    """Record that ``command.member_id`` is a duplicate of ``command.into`` from ``at`` on
    (audited).

    Matching then answers with ``into``; the retired id stays in the graph with its
    lineage, and ``split_members`` undoes the merge from a later instant."""
    member_id, into, by = command.member_id, command.into, command.by
    ledger, directory = uow.identity, uow.members
    if member_id == into:
        raise InvalidInput(
            "a member cannot be merged into itself",
            issues=[Issue("into must name another member", "into")],
        )
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
    with uow:
        at = uow.now
        link = IdentityLink(
            member_id, LinkKind.MERGED_INTO, LinkKind.MEMBER_SYSTEM, into, None, None, by, at
        )
        ledger.change_merge(uow, member_id=member_id, into=None, at=at, link=link)
        uow.record(_merge_event("identity.merge", command, at))
    return link


def split_members(command: SplitMember, uow: IdentityUnit) -> MemberId:
    """End ``command.member_id``'s merge from ``at`` on (audited); returns the member it
    left."""
    member_id, ledger = command.member_id, uow.identity
    into = ledger.merged_into([member_id]).get(member_id)
    if into is None:
        raise NotFound(f"member {member_id} is not merged into another member")
    with uow:
        ledger.change_merge(uow, member_id=member_id, into=into, at=uow.now, link=None)
        change = MergeMembers(member_id, into, command.by, command.request_id)
        uow.record(_merge_event("identity.split", change, uow.now))
    return into


@dataclass(frozen=True)
class BatchTerms:
    """What a batch's requests are decided on: for whom, with which model and policy, at
    what time, and how new ids are made."""

    client_id: ClientId
    model: MatchModel
    policy: MatchPolicy
    at: datetime
    new_id: Callable[[], str]


def decide_for_batch(
    index: IdentityIndex, request: MemberMatchInput, *, request_id: str, terms: BatchTerms
) -> DecisionToRecord:
    """Decide one request of a bulk match file (``request_id``: the line's own id) into
    the decision to store, with its review case when a person must confirm it and its
    audit event; nothing is handed out (no UMB): the file's answer is the decision."""
    record = request_record(request)
    decision_id = DecisionId(terms.new_id())
    decision = decide_request(
        index, record, Matcher(terms.model, terms.policy), terms.at, decision_id
    )
    return _to_record(index, decision, record, request_id, terms)


def decide_many_for_batch(
    index: IdentityIndex, requests: Sequence[tuple[str, MemberMatchInput]], terms: BatchTerms
) -> list[DecisionToRecord]:
    """``decide_for_batch`` of several requests (each with its own id), their candidates
    read together: the same decisions, fewer round trips."""
    matcher, at, new_id = Matcher(terms.model, terms.policy), terms.at, terms.new_id
    records = [request_record(request) for _, request in requests]
    found = index.candidates_of_many(
        [blocking_keys(record, secret=index.blocking_secret) for record in records]
    )
    return [
        _to_record(
            index,
            decide(record, candidates, matcher, at, DecisionId(new_id())),
            record,
            request_id,
            terms,
        )
        for (request_id, _), record, candidates in zip(requests, records, found, strict=True)
    ]


def _to_record(
    index: IdentityIndex,
    decision: MatchDecision,
    record: StandardRecord,
    request_id: str,
    terms: BatchTerms,
) -> DecisionToRecord:
    client_id = terms.client_id
    return DecisionToRecord(
        decision,
        client_id,
        index.keyed_hash(request_id),
        _opening(terms.new_id, record, decision),
        decision_audit_event(decision, actor=client_id, request_id=request_id[:128]),
    )


# Members ``train_on_members`` samples unless told otherwise (``identity train --sample``).
DEFAULT_TRAINING_SAMPLE = 200_000


@dataclass(frozen=True)
class TrainedModel:
    """A model trained on the members and stored, with its summary (counts, no PHI)."""

    model: MatchModel
    summary: dict[str, Any]


@dataclass(frozen=True)
class TrainModel:
    """Train on a uniform sample of at most ``sample`` indexed members, drawn with
    ``seed``; the model is the one matching uses from then on when ``activate``."""

    seed: int
    sample: int = DEFAULT_TRAINING_SAMPLE
    activate: bool = True


def train_on_members(command: TrainModel, uow: IdentityUnit) -> TrainedModel:
    """Train a model on (a uniform sample of) the indexed members and store it.

    u from random pairs of members, m by EM over the members sharing a blocking key,
    term frequencies and the household rate counted over the sample (``population``).
    """
    store, seed, sample = uow.identity, command.seed, command.sample
    rng = random.Random(seed)
    started = time.perf_counter()
    member_ids = store.indexed_member_ids()
    total = len(member_ids)
    if total > sample:
        member_ids = sorted(rng.sample(member_ids, sample))
    chosen = store.records_of(member_ids)
    if not chosen:
        raise UnprocessableRequest(
            "no members are indexed: import member data first (payerbridge import) or "
            "rebuild the index (payerbridge identity reindex)"
        )
    holders: dict[str, list[int]] = {}  # blocking key -> the sampled members holding it
    for i, (_, _, keys) in enumerate(chosen):
        for key in keys:
            holders.setdefault(key, []).append(i)
    fitted = fit_population(
        MemberSample([record for _, record, _ in chosen], holders.values(), population=total),
        rng=rng,
    )
    summary = {
        **fitted.summary,
        "indexed_members": total,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with uow:  # trained at uow.now
        kept = stored_model(fitted.model, trained_on=len(chosen), summary=summary)
        store.save_model(uow, kept, activate=command.activate)
    return TrainedModel(fitted.model, summary)
