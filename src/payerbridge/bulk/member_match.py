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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from payerbridge import big_json
from payerbridge.audit.model import AuditEvent
from payerbridge.audit.refusals import (
    CARD_GUARD,
    DEFAULT_WINDOW,
    Refusal,
    RefusalCounts,
    count_refusals,
)
from payerbridge.bulk.clocks import (
    close_job_clock,
    note_job_clock,
    settle_job_clock,
    start_job_clock,
)
from payerbridge.bulk.model import BulkJob, BulkReason, JobKind, JobStatus, OutputFile
from payerbridge.bulk.ports import BulkJobs, BulkMembers, MemberOutcome, StoredGroup
from payerbridge.compliance.clocks import Clocks
from payerbridge.consent.hrex import parse_hrex_consent
from payerbridge.consent.model import AcceptPresentedConsent, ConsentId, PresentedConsent, Requester
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import SegmentationPolicy, supported_policies
from payerbridge.consent.service import accept_presented_consent
from payerbridge.disclosure.scope import PAYER_TO_PAYER, DataScope
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
from payerbridge.identity.guard import AttemptLimit, CardTry, is_wrong_card_guess, note_attempt
from payerbridge.identity.matching.decision import MatchPolicy
from payerbridge.identity.matching.model import MatchOutcome
from payerbridge.identity.matching.scoring import MatchModel
from payerbridge.identity.ports import DecisionToRecord, IdentityStore, MatchWrites
from payerbridge.identity.service import (
    BatchTerms,
    decide_many_for_batch,
    model_for,
    request_record,
)
from payerbridge.routing.model import Organization
from payerbridge.transactions import Transactions, UnitOfWork
from payerbridge.types import BulkJobId, ClientId, MemberId

__all__ = [
    "BulkPorts",
    "BulkRules",
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
class BulkRules:
    policy: MatchPolicy  # the bulk thresholds
    us: Organization  # the Groups' managing entity; our NPI is the discloser consents name
    consent_zone: ZoneInfo  # where date-only consent periods are read
    output_lifetime: timedelta  # how long a completed job's files stay
    group_lifetime: timedelta  # how long its Groups stay readable and exportable
    chunk_members: int  # members per unit of work
    segmentation: SegmentationPolicy  # what a regular consent withholds
    payer_to_payer_years: int  # the service-date window an export gives
    attempts: AttemptLimit  # the card guard (HRex mm-7), shared with $member-match
    refusal_window: timedelta = DEFAULT_WINDOW  # members refused, counted per window
    scope: DataScope = PAYER_TO_PAYER  # what the rule lets an export carry at all


@dataclass(frozen=True)
class BulkPorts:
    jobs: BulkJobs
    transactions: Transactions
    identity: IdentityStore
    consents: ConsentStore
    members: BulkMembers
    rules: BulkRules
    clock: Callable[[], datetime]
    new_id: Callable[[], str]
    refusals: RefusalCounts[UnitOfWork] | None = None  # members refused, counted
    clocks: Clocks | None = None  # each job's one-business-day answer row (bulk.clocks)


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


def accept_member_match(ports: BulkPorts, asked: MemberMatchAsked) -> BulkJob:
    """Check the request (422 naming every bundle's issues; nothing is kept) and record the
    job, with its audit event; the caller enqueues its workflow."""
    requester = asked.requester
    try:
        members = parse_bulk_member_match_request(asked.body)
    except InvalidInput as exc:
        raise UnprocessableRequest(exc.text, issues=exc.issues) from exc
    now = ports.clock()
    job = BulkJob(
        id=BulkJobId(ports.new_id()),
        client_id=requester.client_id,
        requester_npi=requester.npi,
        kind=JobKind.MEMBER_MATCH,
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
    with ports.transactions.begin() as unit:
        ports.jobs.create(unit, job, asked.raw)
        start_job_clock(unit, ports, job)
        unit.record(
            job_event(
                job, "bulk-member-match", "accepted", now, asked.request_id, members=job.total
            )
        )
    return job


class _Superseded(Exception):
    """The job was cancelled, or another run committed this chunk, while it was decided."""


def run_member_match(ports: BulkPorts, job_id: BulkJobId) -> JobStatus:
    """Take the job from where its row says it is to the end (a recovered run resumes
    after the last committed chunk); the status it ended in."""
    job = ports.jobs.get(job_id)
    if job is None:
        return JobStatus.CANCELLED
    if job.finished:
        return job.status
    if job.status is JobStatus.ACCEPTED:
        with ports.transactions.begin() as unit:
            ports.jobs.start(unit, job_id, at=ports.clock())
    members = parse_bulk_member_match_request(big_json.loads(ports.jobs.request_body(job_id)))
    model = model_for(ports.identity)
    size = ports.rules.chunk_members
    done = job.done
    while done < len(members):
        chunk = members[done : done + size]
        try:
            _match_chunk(ports, job, chunk, done, model)
            done += len(chunk)
        except _Superseded:
            current = ports.jobs.get(job_id)
            if current is None or current.status is not JobStatus.RUNNING:
                return current.status if current is not None else JobStatus.CANCELLED
            done = current.done
    return _complete(ports, job, members)


def _match_chunk(
    ports: BulkPorts,
    job: BulkJob,
    chunk: Sequence[BulkMember],
    done_before: int,
    model: MatchModel,
) -> None:
    rules = ports.rules
    requester = Requester(client_id=job.client_id, npi=job.requester_npi)
    now = ports.clock()
    decisions = decide_many_for_batch(
        ports.identity,
        [(f"{job.id}:{member.position}", member.request) for member in chunk],
        BatchTerms(job.client_id, model, rules.policy, now, ports.new_id),
    )
    decided = [
        (member, _presented(member, requester, rules), to_record)
        for member, to_record in zip(chunk, decisions, strict=True)
    ]
    types = ports.members.resource_types_of(
        [d.decision.member_id for _, _, d in decided if d.decision.member_id is not None]
    )
    with ports.transactions.begin() as unit:
        outcomes: list[MemberOutcome] = []
        events: list[AuditEvent] = []
        kept: list[DecisionToRecord] = []
        refused: list[str] = []  # the reason of each member refused
        writes = ports.identity.match_writes(unit)
        for member, presented, to_record in decided:
            tried = CardTry(job.client_id, request_record(member.request), now)
            guarded = _guarded(ports, writes, tried, to_record.decision.outcome)
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
            permitted = False
            if presented is None:
                events.append(_unreadable_consent_event(job, member_id, now))
            else:
                disclosure = accept_presented_consent(
                    unit,
                    ports.consents,
                    AcceptPresentedConsent(
                        presented,
                        consent_id=ConsentId(ports.new_id()),
                        member_id=MemberId(member_id),
                        requester=requester,
                        at=now,
                        source_npi=rules.us.npi,
                        supported_policies=supported_policies(types[member_id], rules.segmentation),
                        request_id=job.id,
                        detail={"bulk_job": job.id, "member": member.position},
                    ),
                )
                events.append(disclosure.event)
                permitted = disclosure.decision.permitted
            outcomes.append(
                MemberOutcome(member.position, MatchResult.MATCHED, member_id)
                if permitted
                else MemberOutcome(member.position, MatchResult.CONSENT_CONSTRAINED, None)
            )
        ports.identity.record_decisions(unit, kept)
        if not ports.jobs.commit_chunk(
            unit, job.id, done_before=done_before, outcomes=outcomes, at=now
        ):
            raise _Superseded  # rolls the chunk back
        if ports.refusals is not None:
            refusals = [Refusal(job.client_id, _OPERATION, reason, now) for reason in refused]
            count_refusals(ports.refusals, unit, refusals, length=rules.refusal_window)
        unit.record(*events)


_OPERATION = "bulk-member-match"


def _guarded(
    ports: BulkPorts, writes: MatchWrites, tried: CardTry, outcome: MatchOutcome
) -> tuple[str, str] | None:
    """The member's attempt noted for the card guard (HRex mm-7); when it refuses the
    member (over the limit: throttled) or the member is a wrong-card guess (not matched),
    the result to store and the reason it is counted under."""
    attempt = note_attempt(ports.identity, writes, tried, ports.rules.attempts)
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


def _complete(ports: BulkPorts, job: BulkJob, members: Sequence[BulkMember]) -> JobStatus:
    rules = ports.rules
    now = ports.clock()
    by_position = {member.position: member for member in members}
    stored = ports.jobs.outcomes(job.id)
    results = [
        MemberResult(by_position[o.position], _bucket(o.result), o.patient_id) for o in stored
    ]
    throttled = sum(o.result == THROTTLED for o in stored)
    bodies = result_groups(
        results,
        group_ids={bucket: ports.new_id() for bucket in MatchResult},
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
    with ports.transactions.begin() as unit:
        completed = ports.jobs.complete(
            unit,
            job.id,
            groups=groups,
            output=output,
            expires_at=now + rules.output_lifetime,
            at=now,
        )
        if completed:
            unit.record(job_event(job, "bulk-member-match", "completed", now, job.id, **counts))
            settle_job_clock(unit, ports, job.id, now)
    if completed:
        return JobStatus.COMPLETED
    current = ports.jobs.get(job.id)  # cancelled meanwhile: what its client decided stands
    return current.status if current is not None else JobStatus.CANCELLED


def fail_job(ports: BulkPorts, job_id: BulkJobId, error: str) -> None:
    """End the job as failed, saying ``error`` (no member data) to its client."""
    now = ports.clock()
    with ports.transactions.begin() as unit:
        if ports.jobs.fail(unit, job_id, error=error, at=now):
            note_job_clock(unit, ports, job_id, now)
            job = ports.jobs.get(job_id)
            if job is not None:
                unit.record(job_event(job, job.kind.value, "failed", now, job_id))


def job_of(ports: BulkPorts, job_id: BulkJobId, client_id: ClientId) -> BulkJob:
    """The client's own job; anyone else's, or a cancelled one, does not exist (404)."""
    job = ports.jobs.get(job_id)
    if job is None or job.client_id != client_id or job.status is JobStatus.CANCELLED:
        raise NotFound(
            f"no bulk job '{job_id[:64]}'",
            issues=[Issue(f"no bulk job '{job_id[:64]}' of this client", "job")],
        )
    return job


def cancel_job(
    ports: BulkPorts, job_id: BulkJobId, client_id: ClientId, request_id: str | None
) -> None:
    """Cancel the client's job: its workflow stops at its next chunk and what it wrote goes."""
    job = job_of(ports, job_id, client_id)
    now = ports.clock()
    with ports.transactions.begin() as unit:
        if ports.jobs.cancel(unit, job_id, at=now):
            close_job_clock(unit, ports, job_id, now)
            unit.record(job_event(job, job.kind.value, "cancelled", now, request_id))


def file_lines(ports: BulkPorts, job: BulkJob, name: str) -> Iterator[bytes]:
    """The NDJSON lines of one of a completed job's files."""
    if name == ERROR_FILE:
        for outcome in ports.jobs.outcomes(job.id):
            if outcome.result == THROTTLED:
                yield orjson.dumps(_throttled_outcome(outcome.position)) + b"\n"
        return
    groups = [group.body for group in ports.jobs.groups_of(job.id)]
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
