"""The onboarding use cases (new payer): accept a file of members for one old payer, then
take it forward one chunk and one stage at a time (``proceed``), each move committed, so
a run cut off anywhere carries on from the last commit.

A chunk's round trip: kick off ``$bulk-member-match`` with its members' MemberBundles
(each with the member's opt-in as HRex Consent), poll as ``Retry-After`` says, read the
Groups into each member's result, export the MatchedMembers Group with
``$davinci-data-export`` (``_since`` the run's ``since``, for an incremental run:
``onboarding.increments``), poll, download the files and import what they hold under our
ids with Provenance, in one unit of work with each member's count. The member's opt-in
is decided before it is asked about and again before its data is kept, as an exchange's
is at every hop: one revoked or lapsed meanwhile is ``withdrawn``.

Each use case takes its command and the room's unit of work (``OnboardingUnit``), and
writes in ``with uow:`` blocks: one per commit, after the old payer's calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentId, OutboundRequest, Requester
from payerbridge.consent.service import authorize_request, record_consent
from payerbridge.errors import InvalidInput, Issue, NotFound, PartnerRejected, UnprocessableRequest
from payerbridge.exchange.intake.opt_in import OptIn, opt_in_consent
from payerbridge.exchange.model import ExchangeRequest
from payerbridge.exchange.moves import SYSTEM_ACTOR
from payerbridge.exchange.received.reconcile import Holder
from payerbridge.fhir.bulk_member_match import (
    MatchResult,
    matched_group_id,
    member_bundle,
    read_result_groups,
)
from payerbridge.fhir.codes import PAYER_TO_PAYER_EXPORT
from payerbridge.fhir.member_match import build_member_match_request
from payerbridge.onboarding.clocks import (
    MatchAnswered,
    chunk_answered,
    members_asked,
    members_withdrawn,
    start_member_clocks,
)
from payerbridge.onboarding.importing import ExportMember, Receipt, normalize_export
from payerbridge.onboarding.increments import (
    changed_per_member,
    export_time,
    since_asked,
    since_parameters,
)
from payerbridge.onboarding.model import (
    Chunk,
    FailOnboarding,
    NewOnboarding,
    Onboarding,
    OnboardingMember,
    OnboardingStatus,
    ReadOnboarding,
    Stage,
)
from payerbridge.onboarding.one_patient import (
    ImportedMember,
    member_facts,
    under_one_patients,
)
from payerbridge.onboarding.results import (
    NOT_EXPORTED,
    REASON_CODES,
    WITHDRAWN,
    member_reason,
    result_counts,
)
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.routing.model import Partner
from payerbridge.routing.profiles import PROFILES
from payerbridge.types import OPERATOR, ClientId, MemberId, OnboardingId

__all__ = [
    "NOT_EXPORTED",
    "REASON_CODES",
    "WITHDRAWN",
    "Step",
    "accept_onboarding",
    "fail_onboarding",
    "member_reason",
    "onboarding_id_for",
    "onboarding_of",
    "proceed",
    "result_counts",
]

# How long to wait before polling when the old payer does not say (Bulk Data's default
# pace), and the longest wait we take from its Retry-After.
_DEFAULT_POLL = timedelta(seconds=2)
_LONGEST_POLL = timedelta(minutes=5)


@dataclass(frozen=True)
class Step:
    """Where ``proceed`` left the onboarding: ``done``, or when to call it again (None:
    at once; a time only when waiting on the old payer, so a recovered run sleeps where
    the first run did)."""

    done: bool
    retry_at: datetime | None = None


def onboarding_id_for(client_id: ClientId, key: str) -> OnboardingId:
    """A run's id: the same client and key (an Idempotency-Key, a file's digest) name the
    same run, so submitting again resumes it."""
    return OnboardingId(hashlib.sha256(f"{client_id}\n{key}".encode()).hexdigest()[:32])


def accept_onboarding(command: NewOnboarding, uow: OnboardingUnit) -> Onboarding:
    """Record the onboarding with each member's opt-in (kept as a consent record) and
    MemberBundle, all or nothing; an onboarding of this id already recorded is returned
    as it is (the same file submitted again resumes it). ``since``: ask only what changed
    after it (``last``: after what the client's last completed run with the partner
    reflects; InvalidInput when there is none)."""
    onboarding_id, partner_id, requests = (
        command.onboarding_id,
        command.partner_id,
        command.requests,
    )
    client_id, request_id = command.client_id, command.request_id
    existing = uow.onboardings.get(onboarding_id)
    if existing is not None:
        if existing.client_id != client_id:
            raise NotFound(f"onboarding {onboarding_id} does not exist")
        return existing
    partner = uow.partners.get(partner_id)
    if partner is None:
        raise UnprocessableRequest(
            f"no partner is registered with id '{partner_id}'",
            issues=[Issue("register the old payer first", "partner", "not-found")],
        )
    _check_members(requests)
    asked_since = since_asked(uow.onboardings, client_id, partner_id, command.since)
    now = uow.clock()
    size = uow.chunk_members
    onboarding = Onboarding(
        id=onboarding_id,
        client_id=client_id,
        partner_id=partner_id,
        status=OnboardingStatus.RUNNING,
        total=len(requests),
        chunks=(len(requests) + size - 1) // size,
        created_at=now,
        updated_at=now,
        since=asked_since,
    )
    chunks = [
        Chunk(onboarding_id, n, first, min(size, len(requests) - first), Stage.SUBMIT_MATCH)
        for n, first in enumerate(range(0, len(requests), size))
    ]
    with uow:
        uow.onboardings.create(uow, onboarding, chunks)
        members, clocked = [], []
        for position, request in enumerate(requests):
            assert request.consent is not None  # _check_members
            consent = opt_in_consent(
                OptIn(request.consent, MemberId(request.member_id), partner, client_id),
                consent_id=ConsentId(uow.make_id()),
                us=uow.us,
                zone=uow.consent_zone,
                at=now,
            )
            kept = record_consent(
                uow, uow.consents, consent, actor=client_id, request_id=request_id
            )
            members.append(
                OnboardingMember(
                    position,
                    request.member_id,
                    kept.consent_id,
                    _bundle(uow, partner, request, kept.resource),
                )
            )
            clocked.append((position, request, kept))
        uow.onboardings.add_members(uow, onboarding_id, members)
        start_member_clocks(uow, onboarding_id, partner_id, clocked)
        asked = {"since": asked_since.isoformat()} if asked_since else {}
        uow.record(_event(onboarding, "accepted", now, request_id, members=len(requests), **asked))
    return onboarding


def _check_members(requests: Sequence[ExchangeRequest]) -> None:
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for line, request in enumerate(requests, start=1):
        if request.consent is None:
            issues.append(
                Issue(f"line {line}: the member's opt-in (consent) is required", "consent")
            )
        member = request.member_id
        if not member:
            issues.append(Issue(f"line {line}: new_coverage needs the member id", "new_coverage"))
        elif member in seen:
            issues.append(
                Issue(f"line {line}: member {member} is also on line {seen[member]}", "member")
            )
        else:
            seen[member] = line
    if not requests:
        issues.append(Issue("the file holds no members"))
    if issues:
        raise InvalidInput("the members cannot be onboarded as they are", issues=issues)


def _bundle(
    uow: OnboardingUnit, partner: Partner, request: ExchangeRequest, consent: dict[str, Any]
) -> dict[str, Any]:
    parameters = build_member_match_request(
        request,
        consent,
        us=uow.us,
        partner=partner.organization,
        shape=PROFILES.current,
    )
    return member_bundle(parameters, request.member_id)


def onboarding_of(command: ReadOnboarding, uow: OnboardingUnit) -> Onboarding:
    """The client's own onboarding; anyone else's does not exist (404)."""
    onboarding_id = command.onboarding_id
    onboarding = uow.onboardings.get(onboarding_id)
    if onboarding is None or command.client_id not in (onboarding.client_id, OPERATOR):
        raise NotFound(f"onboarding {onboarding_id[:64]} does not exist")
    return onboarding


def proceed(onboarding_id: OnboardingId, uow: OnboardingUnit) -> Step:
    """Move the first unfinished chunk on by one stage (or finish the onboarding), in one
    transaction of ``uow``."""
    onboarding = uow.onboardings.get(onboarding_id)
    if onboarding is None or onboarding.status is not OnboardingStatus.RUNNING:
        return Step(done=True)
    chunk = uow.onboardings.next_chunk(onboarding_id)
    if chunk is None:
        now = uow.clock()
        # Read before the unit takes its connection: every chunk is done, so they are final.
        members = uow.onboardings.members(onboarding_id)
        with uow:
            if uow.onboardings.finish(uow, onboarding_id, OnboardingStatus.COMPLETED, at=now):
                imported = sum(1 for m in members if m.imported)
                counts = result_counts(members)
                uow.record(
                    _event(onboarding, "completed", now, onboarding_id, **counts, imported=imported)
                )
        return Step(done=True)
    partner = uow.partners.get(onboarding.partner_id)
    if partner is None:
        fail_onboarding(FailOnboarding(onboarding_id, "the partner is no longer registered"), uow)
        return Step(done=True)
    now = uow.clock()
    if chunk.due_at is not None and chunk.due_at > now:
        return Step(done=False, retry_at=chunk.due_at)
    stages: dict[Stage, Callable[[OnboardingUnit, Partner, Chunk], Step]] = {
        Stage.SUBMIT_MATCH: _submit_match,
        Stage.AWAIT_MATCH: _await_match,
        Stage.SUBMIT_EXPORT: partial(_submit_export, since=onboarding.since),
        Stage.AWAIT_EXPORT: partial(_await_export, onboarding=onboarding),
    }
    return stages[chunk.stage](uow, partner, chunk)


def _key(chunk: Chunk, stage: str) -> str:
    """The Idempotency-Key of one call of a chunk's stage: the same when it is retried."""
    return f"{chunk.onboarding_id}:{chunk.number}:{stage}"


def _submit_match(uow: OnboardingUnit, partner: Partner, chunk: Chunk) -> Step:
    members = uow.onboardings.members(chunk.onboarding_id, first=chunk.first, size=chunk.size)
    permitted, events = _opted_in(uow, partner, members, "onboarding-match")
    withdrawn = {m.position: (WITHDRAWN, None) for m in members if m.position not in permitted}
    status_url = None
    if permitted:
        bundles = [m.bundle for m in members if m.position in permitted]
        status_url = uow.bulk.kick_off(
            partner,
            "Group/$bulk-member-match",
            {"resourceType": "Parameters", "parameter": bundles},
            idempotency_key=_key(chunk, "match"),
        )
    now = uow.clock()
    with uow:
        if uow.onboardings.move_chunk(
            uow,
            chunk,
            Stage.AWAIT_MATCH if permitted else Stage.DONE,
            at=now,
            status_url=status_url,
        ):
            uow.onboardings.record_results(uow, chunk.onboarding_id, withdrawn)
            members_withdrawn(uow, chunk.onboarding_id, withdrawn, now)
            uow.record(*events)
    return Step(done=False)


def _opted_in(
    uow: OnboardingUnit, partner: Partner, members: Sequence[OnboardingMember], hop: str
) -> tuple[set[int], list[AuditEvent]]:
    """The members whose opt-in still lets us ask ``partner`` (a member may revoke it, or
    it may lapse, while the onboarding runs), and the audit events of the decisions."""
    permitted: set[int] = set()
    events: list[AuditEvent] = []
    now = uow.clock()
    us = Requester(ClientId(SYSTEM_ACTOR), uow.us.npi)
    for member in members:
        disclosure = authorize_request(
            uow.consents.get(member.consent_id),
            OutboundRequest(
                consent_id=member.consent_id, partner_npi=partner.npi, us=us, at=now, hop=hop
            ),
        )
        events.append(disclosure.event)
        if disclosure.decision.permitted:
            permitted.add(member.position)
    return permitted, events


def _await_match(uow: OnboardingUnit, partner: Partner, chunk: Chunk) -> Step:
    manifest = _manifest(uow, partner, chunk)
    if not isinstance(manifest, dict):
        return manifest
    outputs = manifest.get("output") or []
    wanted = [o for o in outputs if o.get("type") == "Group"] or [
        o for o in outputs if o.get("type") == "Parameters"
    ]
    if not wanted:
        raise PartnerRejected("the partner's $bulk-member-match manifest lists no Group file")
    resources = [
        line
        for output in wanted
        for line in _ndjson(
            uow.bulk.download(
                partner, str(output.get("url")), idempotency_key=_key(chunk, "groups")
            )
        )
    ]
    try:
        answers = read_result_groups(resources)
    except ValueError as exc:
        raise PartnerRejected(f"the partner's result Groups cannot be read: {exc}") from exc
    members = uow.onboardings.members(chunk.onboarding_id, first=chunk.first, size=chunk.size)
    position_of = {m.member_id: m.position for m in members}
    results: dict[int, tuple[str, str | None]] = {}
    for submitted, bucket, theirs in answers:
        if submitted in position_of:
            results[position_of[submitted]] = (bucket.value, theirs)
    for member in members:  # a member submitted and left out of the answer was not matched
        if member.result is None:
            results.setdefault(member.position, (MatchResult.NOT_MATCHED.value, None))
    group_id = matched_group_id(resources)
    now = uow.clock()
    with uow:
        if not uow.onboardings.move_chunk(
            uow,
            chunk,
            Stage.SUBMIT_EXPORT if group_id else Stage.DONE,
            at=now,
            group_id=group_id,
        ):
            return Step(done=False)
        uow.onboardings.record_results(uow, chunk.onboarding_id, results)
        asked = [m.position for m in members if m.result is None]
        answered = MatchAnswered(chunk, partner.id, asked, now, data_follows=group_id is not None)
        members_asked(uow, answered)
    return Step(done=False)


def _submit_export(
    uow: OnboardingUnit, partner: Partner, chunk: Chunk, *, since: datetime | None
) -> Step:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "exportType", "valueCanonical": PAYER_TO_PAYER_EXPORT},
            *since_parameters(since),
        ],
    }
    status_url = uow.bulk.kick_off(
        partner,
        f"Group/{chunk.group_id}/$davinci-data-export",
        body,
        idempotency_key=_key(chunk, "export"),
    )
    return _moved(uow, chunk, Stage.AWAIT_EXPORT, status_url=status_url, group_id=chunk.group_id)


def _await_export(
    uow: OnboardingUnit, partner: Partner, chunk: Chunk, *, onboarding: Onboarding
) -> Step:
    manifest = _manifest(uow, partner, chunk)
    if not isinstance(manifest, dict):
        return manifest
    resources: list[dict[str, Any]] = []
    for output in manifest.get("output") or []:
        content = uow.bulk.download(
            partner, str(output.get("url")), idempotency_key=_key(chunk, "files")
        )
        resources.extend(_ndjson(content))
    members = uow.onboardings.members(chunk.onboarding_id, first=chunk.first, size=chunk.size)
    matched = [m for m in members if m.old_patient]
    permitted, events = _opted_in(uow, partner, matched, "onboarding-import")
    imported = [
        ImportedMember(
            m.position,
            _holder(onboarding, partner, m.member_id),
            member_facts(m.member_id, m.bundle),
            str(m.old_patient),
        )
        for m in matched
        if m.position in permitted
    ]
    theirs = {m.old_patient: ExportMember(m.position, m.holder) for m in imported}
    withdrawn = {m.position: (WITHDRAWN, None) for m in matched if m.position not in permitted}
    now = uow.clock()
    normalized = normalize_export(
        resources,
        members=theirs,
        shared=_holder(onboarding, partner, None),
        receipt=Receipt(chunk.onboarding_id, now, uow.us, partner.organization, uow.make_id),
    )
    # Read before the unit begins: a unit's thread gets no second connection (ADR 0008).
    kept, member_patients = under_one_patients(
        uow.received, uow.us, normalized, imported, partner.id
    )
    left_out = {
        m.position: (NOT_EXPORTED, m.old_patient)
        for m in matched
        if m.position in permitted and not normalized.per_member.get(m.position)
    }
    changed = None
    if onboarding.since is not None:
        positions = {patient: member.position for patient, member in theirs.items()}
        changed = changed_per_member(resources, positions, onboarding.since)
    with uow:
        if not uow.onboardings.move_chunk(uow, chunk, Stage.DONE, at=now):
            return Step(done=False)
        uow.onboardings.record_results(uow, chunk.onboarding_id, withdrawn | left_out)
        uow.onboardings.record_imported(
            uow, chunk.onboarding_id, normalized.per_member, changed=changed
        )
        uow.onboardings.record_member_patients(uow, chunk.onboarding_id, member_patients)
        if normalized.per_member:  # data came: what it reflects is the next run's since
            uow.onboardings.record_received(uow, chunk.onboarding_id, export_time(manifest, now))
        members_withdrawn(uow, chunk.onboarding_id, withdrawn, now)
        chunk_answered(uow, chunk, now)
        uow.record(*events)
        uow.writer.write(  # last: on the unit's DB-API path, after the Core statements
            uow, kept, source=f"onboarding:{chunk.onboarding_id}", at=now
        )
    return Step(done=False)


def _holder(onboarding: Onboarding, partner: Partner, member_id: str | None) -> Holder:
    """Whom the run's data is held for: the client's member, as an exchange of the member
    holds it (the same ids), or, for a shared resource (``member_id`` None), the client
    whichever member reaches it."""
    return Holder(onboarding.client_id, member_id or "", partner.npi)


def _manifest(uow: OnboardingUnit, partner: Partner, chunk: Chunk) -> dict[str, Any] | Step:
    """The job's manifest, or the Step that waits for it (the chunk's next poll kept)."""
    assert chunk.status_url is not None
    status = uow.bulk.poll(partner, chunk.status_url, idempotency_key=_key(chunk, "poll"))
    if status.manifest is not None:
        return status.manifest
    now = uow.clock()
    wait = timedelta(seconds=status.retry_after) if status.retry_after else _DEFAULT_POLL
    due = now + min(wait, _LONGEST_POLL)
    with uow:
        uow.onboardings.move_chunk(
            uow,
            chunk,
            chunk.stage,
            at=now,
            status_url=chunk.status_url,
            group_id=chunk.group_id,
            due_at=due,
        )
    return Step(done=False, retry_at=due)


def _moved(
    uow: OnboardingUnit,
    chunk: Chunk,
    to: Stage,
    *,
    status_url: str | None = None,
    group_id: str | None = None,
) -> Step:
    now = uow.clock()
    with uow:
        uow.onboardings.move_chunk(uow, chunk, to, at=now, status_url=status_url, group_id=group_id)
    return Step(done=False)


def _ndjson(content: bytes) -> list[dict[str, Any]]:
    try:
        lines = [orjson.loads(line) for line in content.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise PartnerRejected("a file the partner listed is not NDJSON") from exc
    if not all(isinstance(line, dict) for line in lines):
        raise PartnerRejected("a line of a file the partner listed is not a resource")
    return lines


def fail_onboarding(command: FailOnboarding, uow: OnboardingUnit) -> None:
    """The run ends as failed with ``command.error`` (cut short), unless it had ended."""
    onboarding_id, error = command.onboarding_id, command.error
    now = uow.clock()
    onboarding = uow.onboardings.get(onboarding_id)
    with uow:
        if (
            uow.onboardings.finish(
                uow, onboarding_id, OnboardingStatus.FAILED, at=now, error=error[:500]
            )
            and onboarding is not None
        ):
            uow.record(_event(onboarding, "failed", now, onboarding_id))


def _event(
    onboarding: Onboarding, outcome: str, at: datetime, request_id: str | None, **detail: Any
) -> AuditEvent:
    return AuditEvent(
        at=at,
        actor=onboarding.client_id,
        action="onboarding",
        entity_type="Onboarding",
        entity_id=onboarding.id,
        outcome=outcome,
        request_id=request_id,
        detail={"partner": onboarding.partner_id, **detail},
    )
