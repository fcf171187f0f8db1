"""The ``$bulk-member-match`` job (old payer): accept the request, match its members chunk
by chunk, decide each matched member's Consent, and write the result Groups.

Each member is decided as the bulk matcher decides a request line (``identity.batch``):
its decision, evidence, review case and audit event are stored, nothing is handed out. A
matched member's Consent is then decided for the requester as ``$member-match`` decides
it, and kept when it permits: the member goes to MatchedMembers. A Consent we cannot
honour (expired, naming other parties, a policy this member's records do not allow) or
cannot read puts a matched member in ConsentConstrainedMembers, without saying why
(§pdex-156). A member not matched, sent to review or matching several goes to
NonMatchedMembers. Each chunk's outcomes, decisions and consents commit with the job's
cursor in one unit of work.

Each member is an attempt for the card guard (HRex mm-7, ``identity.guard``), counted
with the client's ``$member-match`` attempts: a member whose demographics the client has
tried with more distinct cards than the limit within the window is not decided on (no
decision, no review case), goes to NonMatchedMembers, and the job's error file
(OperationOutcome) says which MemberBundle was refused and why. A member that only a
reviewer could match, its demographics tried by the client with another card, is a
guess: no decision, no case, NonMatchedMembers. Members not matched, refused by the
guard or guessed are counted in the chunk's unit by client, reason and window (ADR
0045): the audit chain holds one event per window, not one per member.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from payerbridge import big_json
from payerbridge.audit.model import AuditEvent
from payerbridge.audit.refusals import CARD_GUARD, Refusal, count_refusals
from payerbridge.bulk.clocks import (
    close_job_clock,
    note_job_clock,
    settle_job_clock,
    start_job_clock,
)
from payerbridge.bulk.model import BulkJob, BulkReason, JobKind, JobStatus, OutputFile
from payerbridge.bulk.ports import BulkJobs, MemberOutcome, StoredGroup
from payerbridge.bulk.provider_match import ProviderMatches
from payerbridge.bulk.unit import BulkRules, BulkUnit
from payerbridge.consent.hrex import parse_hrex_consent
from payerbridge.consent.model import AcceptPresentedConsent, ConsentId, PresentedConsent, Requester
from payerbridge.consent.segmentation import supported_policies
from payerbridge.consent.service import accept_presented_consent
from payerbridge.errors import (
    AmbiguousMatch,
    InvalidInput,
    Issue,
    MatchUnderReview,
    NoMatch,
    NotFound,
    TooManyAttempts,
    UnprocessableRequest,
)
from payerbridge.fhir.bulk_member_match import (
    BulkMember,
    MatchResult,
    MemberResult,
    parameters_form,
    parse_bulk_member_match_request,
    result_groups,
)
from payerbridge.fhir.provider_member_match import provider_result_groups
from payerbridge.identity.guard import CardTry, is_wrong_card_guess, note_attempt
from payerbridge.identity.matching.model import MatchOutcome
from payerbridge.identity.matching.scoring import MatchModel
from payerbridge.identity.ports import DecisionToRecord, MatchWrites
from payerbridge.identity.service import (
    BatchTerms,
    decide_many_for_batch,
    model_for,
    request_record,
)
from payerbridge.routing.model import Organization
from payerbridge.types import BulkJobId, ClientId, MemberId

__all__ = [
    "CancelJob",
    "FailJob",
    "MemberMatchAsked",
    "accept_member_match",
    "cancel_job",
    "fail_job",
    "file_lines",
    "job_event",
    "job_of",
    "run_member_match",
]

GROUP_FILE, PARAMETERS_FILE = "Group.ndjson", "Parameters.ndjson"
ERROR_FILE = "OperationOutcome.ndjson"
# A member refused by the card guard, as its outcome is stored: not matched, and why.
THROTTLED = BulkReason.THROTTLED.value


@dataclass(frozen=True)
class MemberMatchAsked:
    """A ``$bulk-member-match`` as kicked off: its body (parsed, and as received), by
    whom, at which URL, the PDex version to answer in and the request's correlation id."""

    body: Any
    raw: bytes
    requester: Requester
    request_url: str
    pdex_version: str
    request_id: str | None
    kind: JobKind = JobKind.MEMBER_MATCH  # or Provider Access's (ADR 0059)


def _parse(body: Any, kind: JobKind) -> tuple[BulkMember, ...]:
    return parse_bulk_member_match_request(body, f"${kind.value}")


def accept_member_match(asked: MemberMatchAsked, uow: BulkUnit) -> BulkJob:
    """Check the request (422 naming every bundle's issues; nothing is kept) and record the
    job, with its audit event; the caller enqueues its workflow."""
    requester = asked.requester
    try:
        members = _parse(asked.body, asked.kind)
    except InvalidInput as exc:
        raise UnprocessableRequest(exc.text, issues=exc.issues) from exc
    now = uow.clock()
    job = BulkJob(
        id=BulkJobId(uow.mint_id()),
        client_id=requester.client_id,
        requester_npi=requester.npi,
        kind=asked.kind,
        status=JobStatus.ACCEPTED,
        pdex_version=asked.pdex_version,
        request_url=asked.request_url,
        total=len(members),
        done=0,
        lines=0,
        created_at=now,
        updated_at=now,
        transaction_time=now,
    )
    with uow:
        uow.jobs.create(uow, job, asked.raw)
        start_job_clock(uow, job)
        uow.record(
            job_event(job, job.kind.value, "accepted", now, asked.request_id, members=job.total)
        )
    return job


class _Superseded(Exception):
    """The job was cancelled, or another run committed this chunk, while it was decided."""


def run_member_match(job_id: BulkJobId, uow: BulkUnit) -> JobStatus:
    """Take the job from where its row says it is to the end (a recovered run resumes
    after the last committed chunk); the status it ended in."""
    job = uow.jobs.get(job_id)
    if job is None:
        return JobStatus.CANCELLED
    if job.finished:
        return job.status
    if job.status is JobStatus.ACCEPTED:
        with uow:
            uow.jobs.start(uow, job_id, at=uow.clock())
    members = _parse(big_json.loads(uow.jobs.request_body(job_id)), job.kind)
    model = model_for(uow.identity)
    size = uow.rules.chunk_members
    done = job.done
    while done < len(members):
        chunk = members[done : done + size]
        try:
            _match_chunk(uow, job, chunk, done, model)
            done += len(chunk)
        except _Superseded:
            current = uow.jobs.get(job_id)
            if current is None or current.status is not JobStatus.RUNNING:
                return current.status if current is not None else JobStatus.CANCELLED
            done = current.done
    return _complete(uow, job, members)


def _match_chunk(
    uow: BulkUnit,
    job: BulkJob,
    chunk: Sequence[BulkMember],
    done_before: int,
    model: MatchModel,
) -> None:
    rules = uow.rules
    requester = Requester(client_id=job.client_id, npi=job.requester_npi)
    now = uow.clock()
    decisions = decide_many_for_batch(
        uow.identity,
        [(f"{job.id}:{member.position}", member.request) for member in chunk],
        BatchTerms(job.client_id, model, rules.policy, now, uow.mint_id),
    )
    provider = job.kind is JobKind.PROVIDER_MEMBER_MATCH  # an attestation, not a consent
    decided = [
        (member, None if provider else _presented(member, requester, rules), to_record)
        for member, to_record in zip(chunk, decisions, strict=True)
    ]
    matched_ids = [
        MemberId(d.decision.member_id) for _, _, d in decided if d.decision.member_id is not None
    ]
    types = uow.members.resource_types_of(matched_ids)
    attested = ProviderMatches.of_chunk(uow, job, matched_ids, now) if provider else None
    with uow:
        outcomes: list[MemberOutcome] = []
        events: list[AuditEvent] = []
        kept: list[DecisionToRecord] = []
        refused: list[str] = []  # the reason of each member refused
        writes = uow.identity.match_writes(uow)
        for member, presented, to_record in decided:
            tried = CardTry(job.client_id, request_record(member.request), now)
            guarded = _guarded(uow, writes, tried, to_record.decision.outcome)
            if guarded is not None:  # no decision, no review case: a guess reaches no one
                outcomes.append(MemberOutcome(member.position, guarded[0], None))
                refused.append(guarded[1])
                continue
            kept.append(to_record)
            events.append(to_record.event)
            member_id = to_record.decision.member_id
            if to_record.decision.outcome is not MatchOutcome.MATCH or member_id is None:
                outcomes.append(MemberOutcome(member.position, MatchResult.NOT_MATCHED, None))
                refused.append(_NOT_MATCHED.get(to_record.decision.outcome, NoMatch.reason_code))
                continue
            if attested is not None:
                result, more = attested.outcome(uow, member, MemberId(member_id))
                events.extend(more)
            else:
                matched_member = _Matched(member, MemberId(member_id), presented, types)
                result = _consent_outcome(uow, job, matched_member, events, now)
            matched = member_id if result is MatchResult.MATCHED else None
            outcomes.append(MemberOutcome(member.position, result, matched))
        uow.identity.record_decisions(uow, kept)
        if not uow.jobs.commit_chunk(
            uow, job.id, done_before=done_before, outcomes=outcomes, at=now
        ):
            raise _Superseded  # rolls the chunk back
        if uow.refusals is not None:
            refusals = [Refusal(job.client_id, job.kind.value, reason, now) for reason in refused]
            count_refusals(uow.refusals, uow, refusals, length=rules.refusal_window)
        uow.record(*events)


@dataclass(frozen=True)
class _Matched:
    """A member the engine matched, with the Consent it presented (None: unreadable)
    and the chunk's members' resource types."""

    member: BulkMember
    member_id: MemberId
    presented: PresentedConsent | None
    types: dict[MemberId, set[str]]


def _consent_outcome(
    uow: BulkUnit, job: BulkJob, matched: _Matched, events: list[AuditEvent], now: datetime
) -> MatchResult:
    """A matched member's Consent decided for the requester and kept when it permits:
    MatchedMembers; ConsentConstrainedMembers otherwise. Its audit event joins ``events``."""
    rules, member_id = uow.rules, matched.member_id
    if matched.presented is None:
        events.append(_unreadable_consent_event(job, member_id, now))
        return MatchResult.CONSENT_CONSTRAINED
    disclosure = accept_presented_consent(
        uow,
        uow.consents,
        AcceptPresentedConsent(
            matched.presented,
            consent_id=ConsentId(uow.mint_id()),
            member_id=member_id,
            requester=Requester(client_id=job.client_id, npi=job.requester_npi),
            at=now,
            source_npi=rules.us.npi,
            supported_policies=supported_policies(matched.types[member_id], rules.segmentation),
            request_id=job.id,
            detail={"bulk_job": job.id, "member": matched.member.position},
        ),
    )
    events.append(disclosure.event)
    if disclosure.decision.permitted:
        return MatchResult.MATCHED
    return MatchResult.CONSENT_CONSTRAINED


def _guarded(
    uow: BulkUnit, writes: MatchWrites, tried: CardTry, outcome: MatchOutcome
) -> tuple[str, str] | None:
    """The member's attempt noted for the card guard (HRex mm-7); when it refuses the
    member (over the limit: throttled) or the member is a wrong-card guess (not matched),
    the result to store and the reason it is counted under."""
    attempt = note_attempt(uow.identity, writes, tried, uow.rules.attempts)
    if attempt.is_over:
        return THROTTLED, TooManyAttempts.reason_code
    if is_wrong_card_guess(attempt, outcome):
        return MatchResult.NOT_MATCHED.value, CARD_GUARD
    return None


# The reason a member the engine did not match is counted under: its $member-match's.
_NOT_MATCHED = {
    MatchOutcome.NO_MATCH: NoMatch.reason_code,
    MatchOutcome.MULTIPLE: AmbiguousMatch.reason_code,
    MatchOutcome.REVIEW: MatchUnderReview.reason_code,
}


def _presented(
    member: BulkMember, requester: Requester, rules: BulkRules
) -> PresentedConsent | None:
    """The member's Consent as presented, or None when it cannot be read as HRex's."""
    try:
        return parse_hrex_consent(
            member.request.consent,
            our_npi=rules.us.npi,
            requester=requester,
            zone=rules.consent_zone,
        )
    except UnprocessableRequest:
        return None


def _complete(uow: BulkUnit, job: BulkJob, members: Sequence[BulkMember]) -> JobStatus:
    rules = uow.rules
    now = uow.clock()
    by_position = {member.position: member for member in members}
    stored = uow.jobs.outcomes(job.id)
    results = [
        MemberResult(by_position[o.position], _bucket(o.result), o.patient_id) for o in stored
    ]
    throttled = sum(o.result == THROTTLED for o in stored)
    render = provider_result_groups if job.kind is JobKind.PROVIDER_MEMBER_MATCH else result_groups
    bodies = render(
        results,
        group_ids={bucket: uow.mint_id() for bucket in MatchResult},
        requester=Organization(job.client_id, job.requester_npi),
        us=rules.us,
        matched_at=now,
    )
    groups = [
        StoredGroup(
            id=body["id"],
            job_id=job.id,
            client_id=job.client_id,
            requester_npi=job.requester_npi,
            result=body["code"]["coding"][0]["code"],
            created_at=now,
            expires_at=now + rules.group_lifetime,
            body=body,
        )
        for body in bodies
    ]
    output = (
        [OutputFile("Parameters", PARAMETERS_FILE, 1)]
        if job.pdex_version == "2.1"
        else [OutputFile("Group", GROUP_FILE, len(groups))]
    )
    if throttled:
        output.append(OutputFile("OperationOutcome", ERROR_FILE, throttled, error=True))
    counts = {bucket.value: sum(r.result is bucket for r in results) for bucket in MatchResult}
    counts["throttled"] = throttled
    with uow:
        completed = uow.jobs.complete(
            uow,
            job.id,
            groups=groups,
            output=output,
            expires_at=now + rules.output_lifetime,
            at=now,
        )
        if completed:
            uow.record(job_event(job, job.kind.value, "completed", now, job.id, **counts))
            settle_job_clock(uow, job.id, now)
    if completed:
        return JobStatus.COMPLETED
    current = uow.jobs.get(job.id)  # cancelled meanwhile: what its client decided stands
    return current.status if current is not None else JobStatus.CANCELLED


@dataclass(frozen=True)
class FailJob:
    """A job to end as failed, and why, as its client is told (no member data)."""

    job_id: BulkJobId
    error: str


def fail_job(command: FailJob, uow: BulkUnit) -> None:
    """End the job as failed, saying ``command.error`` to its client."""
    job_id = command.job_id
    now = uow.clock()
    with uow:
        if uow.jobs.fail(uow, job_id, error=command.error, at=now):
            note_job_clock(uow, job_id, now)
            job = uow.jobs.get(job_id)
            if job is not None:
                uow.record(job_event(job, job.kind.value, "failed", now, job_id))


def job_of(jobs: BulkJobs, job_id: BulkJobId, client_id: ClientId) -> BulkJob:
    """The client's own job; anyone else's, or a cancelled one, does not exist (404)."""
    job = jobs.get(job_id)
    if job is None or job.client_id != client_id or job.status is JobStatus.CANCELLED:
        raise NotFound(
            f"no bulk job '{job_id[:64]}'",
            issues=[Issue(f"no bulk job '{job_id[:64]}' of this client", "job")],
        )
    return job


@dataclass(frozen=True)
class CancelJob:
    """A client's job to cancel, by the client, and the request's correlation id."""

    job_id: BulkJobId
    client_id: ClientId
    request_id: str | None


def cancel_job(command: CancelJob, uow: BulkUnit) -> None:
    """Cancel the client's job: its workflow stops at its next chunk and what it wrote goes."""
    job_id = command.job_id
    job = job_of(uow.jobs, job_id, command.client_id)
    now = uow.clock()
    with uow:
        if uow.jobs.cancel(uow, job_id, at=now):
            close_job_clock(uow, job_id, now)
            uow.record(job_event(job, job.kind.value, "cancelled", now, command.request_id))


def file_lines(job: BulkJob, name: str, uow: BulkUnit) -> Iterator[bytes]:
    """The NDJSON lines of one of a completed job's files."""
    if name == ERROR_FILE:
        for outcome in uow.jobs.outcomes(job.id):
            if outcome.result == THROTTLED:
                yield orjson.dumps(_throttled_outcome(outcome.position)) + b"\n"
        return
    groups = [group.body for group in uow.jobs.groups_of(job.id)]
    if name == PARAMETERS_FILE:
        yield orjson.dumps(parameters_form(groups, job.pdex_version)) + b"\n"
        return
    yield b"".join(orjson.dumps(body) + b"\n" for body in groups)


def job_event(
    job: BulkJob, action: str, outcome: str, at: datetime, request_id: str | None, **detail: Any
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=job.client_id,
        action=action,
        entity_type="BulkJob",
        entity_id=job.id,
        outcome=outcome,
        request_id=request_id,
        detail={"pdex": job.pdex_version, **detail},
    )


def _unreadable_consent_event(job: BulkJob, member_id: MemberId, at: datetime) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=job.client_id,
        action="consent.decision",
        entity_type="Patient",
        entity_id=member_id,
        outcome="deny",
        request_id=job.id,
        detail={
            "hop": "bulk-member-match",
            "reason": BulkReason.CONSENT_UNREADABLE.value,
            "bulk_job": job.id,
        },
    )


def _bucket(result: str) -> MatchResult:
    return MatchResult.NOT_MATCHED if result == THROTTLED else MatchResult(result)


def _throttled_outcome(position: int) -> dict[str, Any]:
    """The error file's line for a member the card guard refused (no member data)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "throttled",
                "diagnostics": (
                    f"MemberBundle {position}: not matched: this client tried the same "
                    "member's demographics with more different cards than the card guard "
                    "allows within its window (HRex mm-7); send the card data the member "
                    "gave you, later"
                ),
                "expression": [f"Parameters.parameter[{position}]"],
            }
        ],
    }
