"""In-memory implementations of the rooms' ports, for unit tests of the use cases.

Each keeps what a SQL store keeps, in dicts, and honours the same rules the use cases
rely on: the state machine is checked on every move, an ``expected`` state that no
longer holds is an IllegalTransition, and writes happen in a unit of work
(``InMemoryTransactions``): they apply at once, a unit whose block raises puts every
store back as it found it, and the audit events recorded on a unit reach the one
``InMemoryAuditLog`` when it commits. No database, no network: a test runs in
milliseconds.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from payerbridge.audit.chain import GENESIS, detail_text, leaf_hash, link_events
from payerbridge.audit.checkpoints import StoredCheckpoint
from payerbridge.audit.model import AuditEvent, AuditQuery, Checkpoint, StoredEvent
from payerbridge.backends.live import AskedSource, LiveAnswers
from payerbridge.backends.ports import RecordsQuery, SourceAnswer, SourceGap
from payerbridge.backends.sources import LiveSourceSpec
from payerbridge.bulk.model import BulkJob, JobStatus
from payerbridge.bulk.ports import StoredGroup
from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.obligations import shipped_obligations
from payerbridge.consent.model import ConsentRole, StoredConsent, revoke
from payerbridge.disclosure.model import PageEntry, Snapshot
from payerbridge.errors import (
    IllegalTransition,
    NoMatch,
    NotFound,
    PartnerUnavailable,
    StoreConflict,
)
from payerbridge.exchange.model import (
    STOPPED_STATES,
    Attempt,
    BreakerState,
    BreakerStatus,
    DeadLetter,
    ExchangeRecord,
    ExchangeState,
    Move,
    NewExchange,
    PullSchedule,
    Stamp,
    Submission,
    Transition,
    check_transition,
)
from payerbridge.exchange.ports import HeldFor, ProbeAnswer, RecordRead, Retrieved
from payerbridge.exchange.received.reconcile import identifier_keys
from payerbridge.fhir.completeness import Gap, outcome_entry
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.model import MatchDecision, StoredModel
from payerbridge.identity.model import (
    IdentityLink,
    LinkKind,
    ReviewCase,
    ReviewDecision,
    ReviewOpening,
    StandardRecord,
)
from payerbridge.identity.unit import IdentityUnit
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import RateLimit
from payerbridge.security.model import OrganizationEvidence, RegisteredClient
from payerbridge.transactions import UnitOfWork
from payerbridge.types import BulkJobId, ClientId, ExchangeId, MemberId, PartnerId

__all__ = [
    "FakeClock",
    "InMemoryTransactions",
    "InMemoryUnitOfWork",
    "FakePartnerClient",
    "InMemoryAssertionLedger",
    "InMemoryClientDirectory",
    "StaticKeySets",
    "InMemoryAuditChain",
    "InMemoryAuditLog",
    "InMemoryBreakerStore",
    "InMemoryBulkJobs",
    "InMemoryConsentStore",
    "InMemoryDisclosureSnapshots",
    "InMemoryMemberData",
    "InMemoryExchangeStore",
    "InMemoryIdentityStore",
    "InMemoryPartnerDirectory",
    "InMemoryPullSchedules",
    "InMemoryResourceWriter",
]


class InMemoryUnitOfWork:
    """The ``UnitOfWork`` port: the events recorded, for the commit; ``now`` from the
    transactions' clock, ids numbered in the order they were handed out."""

    def __init__(self, now: datetime, ids: Callable[[], str]) -> None:
        self.now = now
        self.new_id = ids
        self.events: list[AuditEvent] = []

    def record(self, *events: AuditEvent) -> None:
        self.events.extend(events)


class InMemoryTransactions:
    """The ``Transactions`` port over the fake stores given (``attach``): a rollback puts
    back every container attribute (dict, list, set) of each, as it was at ``begin``.
    Each unit's ``now`` is read from ``clock`` as it begins (a ``FakeClock`` by default)."""

    def __init__(
        self,
        audit: InMemoryAuditLog,
        *stores: object,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._audit = audit
        self._stores = list(stores)
        self.clock = clock or FakeClock()
        self._ids = 0
        self.commits = 0
        self.rollbacks = 0

    def attach(self, *stores: object) -> None:
        self._stores.extend(stores)

    @contextmanager
    def begin(self) -> Iterator[InMemoryUnitOfWork]:
        saved = [
            (store, {k: copy.deepcopy(v) for k, v in vars(store).items() if _is_container(v)})
            for store in self._stores
        ]
        unit = InMemoryUnitOfWork(self.clock(), self._new_id)
        try:
            yield unit
        except BaseException:
            for store, containers in saved:
                vars(store).update(containers)
            self.rollbacks += 1
            raise
        self._audit.record_many(unit.events)
        self.commits += 1

    def _new_id(self) -> str:
        self._ids += 1
        return f"unit-id-{self._ids}"


class _Bound:
    """A store bound to a unit of work (ADR 0051): ``within(unit)`` is a copy of it that
    writes there, sharing its containers; the store itself refuses to write."""

    _unit: InMemoryUnitOfWork | None = None

    def within(self, unit: Any) -> Any:
        bound = copy.copy(self)
        bound._unit = unit
        return bound

    @property
    def unit(self) -> InMemoryUnitOfWork:
        if self._unit is None:
            raise RuntimeError(f"{type(self).__name__} was asked to write outside a unit of work")
        return self._unit


def _is_container(value: object) -> bool:
    return isinstance(value, (dict, list, set))


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class InMemoryAuditLog:
    """The ``AuditLog`` port: events in the order they were recorded."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        return [
            {**dataclasses.asdict(e), "seq": n}
            for n, e in enumerate(self.events, start=1)
            if (e.entity_type, e.entity_id) == (entity_type, entity_id)
        ]

    def actions(self, entity_id: str | None = None) -> list[str]:
        return [e.action for e in self.events if entity_id in (None, e.entity_id)]


class InMemoryAuditChain:
    """The ``AuditChain`` port over an ``InMemoryAuditLog``: the events linked as the
    SQL writer links them."""

    def __init__(self, log: InMemoryAuditLog) -> None:
        self._log = log
        self.checkpoints: list[StoredCheckpoint] = []

    def _stored(self) -> list[StoredEvent]:
        events = self._log.events
        chained = link_events(0, GENESIS, [leaf_hash(e) for e in events])
        return [
            StoredEvent(
                seq=c.seq,
                at=e.at,
                actor=e.actor,
                action=e.action,
                entity_type=e.entity_type,
                entity_id=e.entity_id,
                outcome=e.outcome,
                request_id=e.request_id,
                detail=detail_text(e.detail),
                leaf_hash=c.leaf_hash,
                prev_hash=c.prev_hash,
                chain_hash=c.chain_hash,
            )
            for e, c in zip(events, chained, strict=True)
        ]

    def head(self) -> tuple[int, str]:
        stored = self._stored()
        return (stored[-1].seq, stored[-1].chain_hash) if stored else (0, GENESIS)

    def events(self, *, after: int = 0, up_to: int | None = None) -> Iterator[StoredEvent]:
        for event in self._stored():
            if event.seq > after and (up_to is None or event.seq <= up_to):
                yield event

    def last_checkpoint(self) -> StoredCheckpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    # -- the ``AuditReader`` port -------------------------------------------------------

    def about(self, entities: Sequence[tuple[str, str]]) -> list[StoredEvent]:
        wanted = set(entities)
        return [e for e in self._stored() if (e.entity_type, e.entity_id) in wanted]

    def by_request(self, request_id: str, *, actor: str | None, limit: int) -> list[StoredEvent]:
        return [
            e for e in self._stored() if e.request_id == request_id and actor in (None, e.actor)
        ][:limit]

    def event(self, seq: int) -> StoredEvent | None:
        return next((e for e in self._stored() if e.seq == seq), None)

    def search(self, query: AuditQuery) -> list[StoredEvent]:
        found = [
            e
            for e in reversed(self._stored())
            if (query.entity is None or (e.entity_type, e.entity_id) == query.entity)
            and query.agent in (None, e.actor)
            and query.action in (None, e.action)
            and (query.before is None or e.seq < query.before)
            and (query.start is None or e.at >= query.start)
            and (query.end is None or e.at < query.end)
        ]
        return found[: query.count]

    def checkpoint(self, seq: int | None = None) -> Checkpoint | None:
        made = [s.checkpoint for s in self.checkpoints if seq in (None, s.checkpoint.seq)]
        return made[-1] if made else None

    def leaves(self, start: int, end: int) -> list[str]:
        return [e.leaf_hash for e in self._stored()[start:end]]

    def nodes(self, level: int, start: int, end: int) -> dict[int, str]:
        kept = {(h, i): d for s in self.checkpoints for h, i, d in s.nodes}
        return {i: kept[(level, i)] for i in range(start, end) if (level, i) in kept}

    def save_checkpoints(self, unit: UnitOfWork, checkpoints: Sequence[StoredCheckpoint]) -> bool:
        self.checkpoints.extend(checkpoints)  # put back if the unit rolls back
        return True


class InMemoryExchangeStore(_Bound):
    """The ``ExchangeStore`` port."""

    def __init__(self) -> None:
        self.records: dict[str, ExchangeRecord] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._payloads: dict[str, tuple[str, str]] = {}
        self._letters: dict[str, DeadLetter] = {}

    # -- writing ---------------------------------------------------------------------------

    def create(self, new: NewExchange) -> None:
        if new.idempotency_key is not None:
            if (new.client_id, new.idempotency_key) in self._keys:
                raise StoreConflict("a record with the same unique key already exists")
            self._keys[(new.client_id, new.idempotency_key)] = new.exchange_id
        record = ExchangeRecord(
            id=new.exchange_id,
            state=ExchangeState.SUBMITTED,
            partner_id=new.partner_id,
            client_id=new.client_id,
            request=new.request,
            request_hash=new.request_hash,
            matched_member_ref=None,
            member_identifier=None,
            imported_patient_id=None,
            resource_count=None,
            error_code=None,
            error_text=None,
            created_at=new.at,
            updated_at=new.at,
            idempotency_key=new.idempotency_key,
            current_step=None,
            attempts=0,
            next_attempt_at=None,
            last_error=None,
            deadline_at=new.deadline_at,
            replay_count=0,
            consent_id=new.consent_id,
            member_key=new.member_key,
            request_id=new.request_id,
            since=new.since,
        )
        self.records[new.exchange_id] = record
        steps = [(None, Move(ExchangeState.SUBMITTED))]
        self._write(record, steps, new.at, new.client_id, new.policy_version)

    def find_by_idempotency_key(self, client_id: str, key: str | None) -> Submission | None:
        found = self._keys.get((client_id, key)) if key is not None else None
        if found is None:
            return None
        return Submission(found, False, self.records[found].request_hash)

    def advance(
        self,
        exchange_id: str,
        moves: Sequence[Move],
        stamp: Stamp,
        *,
        expected: ExchangeState | None = None,
    ) -> ExchangeState:
        record = self.current(exchange_id)
        if expected is not None and record.state is not expected:
            raise IllegalTransition(
                f"the exchange is in '{record.state}', no longer in '{expected}'"
            )
        steps, current = [], record.state
        for move in moves:
            check_transition(current, move.target)
            steps.append((current, move))
            current = move.target
        self._write(record, steps, stamp.at, stamp.actor, stamp.policy_version)
        return record.state

    def _write(
        self,
        record: ExchangeRecord,
        steps: Sequence[tuple[ExchangeState | None, Move]],
        at: datetime,
        actor: str,
        policy_version: str | None,
    ) -> None:
        fields = {f.name for f in dataclasses.fields(ExchangeRecord)}
        transitions = list(record.transitions)
        values: dict[str, Any] = {}
        for current, move in steps:
            values.update({k: v for k, v in (move.updates or {}).items() if k in fields})
            transitions.append(
                Transition(
                    len(transitions) + 1,
                    current.value if current else None,
                    move.target.value,
                    at,
                    actor,
                    move.reason_code,
                    move.detail,
                    policy_version,
                )
            )
        state = steps[-1][1].target if steps else record.state
        self.records[record.id] = dataclasses.replace(
            self.records[record.id],
            **values,
            state=state,
            updated_at=at,
            transitions=tuple(transitions),
        )

    def record_attempt(self, exchange_id: str, attempt: Attempt, *, at: datetime) -> None:
        self.records[exchange_id] = dataclasses.replace(
            self.current(exchange_id),
            current_step=attempt.step,
            attempts=attempt.attempts,
            next_attempt_at=attempt.next_attempt_at,
            step_started_at=attempt.step_started_at,
            last_error=attempt.last_error,
            updated_at=at,
        )

    def save_payload(self, exchange_id: str, body: str, sha256: str, at: datetime) -> None:
        self._payloads[exchange_id] = (body, sha256)

    def file_dead_letter(self, letter: DeadLetter) -> None:
        self._letters[letter.exchange_id] = letter

    def block_under_consent(
        self, consent_id: str, move: Move, *, at: datetime, actor: str
    ) -> list[tuple[ExchangeId, ExchangeState]]:
        blocked = []
        for record in list(self.records.values()):
            if record.consent_id == consent_id and record.state not in STOPPED_STATES:
                check_transition(record.state, move.target)
                self._write(record, [(record.state, move)], at, actor, None)
                blocked.append((record.id, record.state))
        return blocked

    def mark_replayed(
        self,
        exchange_id: str,
        *,
        by: str,
        key: str | None,
        at: datetime,
    ) -> None:
        letter = self._letters.get(exchange_id)
        if letter is not None:
            self._letters[exchange_id] = dataclasses.replace(
                letter, replayed_at=at, replayed_by=by, replay_key=key
            )

    # -- reading ---------------------------------------------------------------------------

    def current(self, exchange_id: str) -> ExchangeRecord:
        record = self.records.get(exchange_id)
        if record is None:
            raise NotFound(f"exchange {exchange_id} does not exist")
        return record

    get = current

    def ids_in_state(
        self, state: ExchangeState, *, updated_before: datetime, partner_id: str | None = None
    ) -> list[ExchangeId]:
        return [
            r.id
            for r in self.records.values()
            if r.state is state
            and r.updated_at < updated_before
            and (partner_id is None or r.partner_id == partner_id)
        ]

    def payload(self, exchange_id: str) -> str:
        return self._payloads[exchange_id][0]

    def payload_sha256(self, exchange_id: str) -> str | None:
        found = self._payloads.get(exchange_id)
        return found[1] if found else None

    def dead_letter(self, exchange_id: str) -> DeadLetter | None:
        return self._letters.get(exchange_id)

    def compartments_held(self, client_id: str, member_key: str, *, other_than: str) -> list[str]:
        ends = ("completed", "partial", "conflict")
        return sorted(
            {
                r.imported_patient_id
                for r in self.records.values()
                if r.member_key == member_key
                and r.client_id == client_id
                and r.state.value in ends
                and r.imported_patient_id is not None
                and r.imported_patient_id != other_than
            }
        )


class InMemoryBulkJobs:
    """The parts of the ``BulkJobs`` port that accepting, reading and cancelling jobs and
    reading Groups use: jobs with their request bodies, and the Groups given."""

    def __init__(self, *groups: StoredGroup) -> None:
        self.jobs: dict[BulkJobId, BulkJob] = {}
        self.bodies: dict[BulkJobId, bytes] = {}
        self.groups = {group.id: group for group in groups}

    def create(self, unit: UnitOfWork, job: BulkJob, request_body: bytes) -> None:
        if job.id in self.jobs:
            raise StoreConflict(f"bulk job {job.id} exists")
        self.jobs[job.id] = job
        self.bodies[job.id] = request_body

    def get(self, job_id: BulkJobId) -> BulkJob | None:
        return self.jobs.get(job_id)

    def request_body(self, job_id: BulkJobId) -> bytes:
        return self.bodies[job_id]

    def cancel(self, unit: UnitOfWork, job_id: BulkJobId, *, at: datetime) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status is JobStatus.CANCELLED:
            return False
        self.jobs[job_id] = dataclasses.replace(job, status=JobStatus.CANCELLED, updated_at=at)
        self.groups = {k: g for k, g in self.groups.items() if g.job_id != job_id}
        return True

    def group(self, group_id: str) -> StoredGroup | None:
        return self.groups.get(group_id)

    def find_groups(
        self,
        client_id: ClientId,
        *,
        requester_npis: frozenset[str] | None,
        results: frozenset[str] | None,
        now: datetime,
    ) -> list[StoredGroup]:
        return [
            group
            for group in self.groups.values()
            if group.client_id == client_id
            and group.expires_at > now
            and (requester_npis is None or group.requester_npi in requester_npis)
            and (results is None or group.result in results)
        ]


class InMemoryPartnerDirectory:
    def __init__(self, *partners: Partner) -> None:
        self.partners = {p.id: p for p in partners}
        self.readings: dict[str, Capabilities] = {}

    def get(self, partner_id: str) -> Partner | None:
        return self.partners.get(partner_id)

    def capabilities(self, partner_id: str) -> Capabilities | None:
        return self.readings.get(partner_id)


class FakePartnerClient:
    """A partner that answers from a script: ``outages`` calls fail as unavailable first,
    then ``$member-match`` answers ``match``, ``Patient?identifier=`` finds ``found``
    (nobody when None) and ``$everything`` answers ``bundle``."""

    def __init__(
        self,
        *,
        match: MemberMatchResult,
        bundle: bytes,
        outages: int = 0,
        found: str | None = None,
        answers: list[MemberMatchResult | Exception] | None = None,
        page_missing_until_last: bool = False,
    ) -> None:
        self.match, self.bundle, self.outages, self.found = match, bundle, outages, found
        # $everything's later page down on every attempt: the last keeps what was read.
        self.page_missing_until_last = page_missing_until_last
        self.answers = list(answers or [])  # $member-match answers before ``match``, in turn
        self.since_asked: datetime | None = None  # what the last $everything asked from
        self.calls: list[tuple[str, str]] = []  # (operation, idempotency key)
        self.probes = 0  # the breaker's probes: answered while no outage is left

    def probe(self, partner: Partner, *, timeout: float) -> ProbeAnswer:
        self.probes += 1
        if self.outages > 0:
            return ProbeAnswer(False, None, "ConnectError", 1)
        return ProbeAnswer(True, 200, None, 1)

    def check_token(self, partner: Partner) -> ProbeAnswer | None:
        self.calls.append(("token", "check"))
        if partner.client_id is None:
            return None
        if self.outages > 0:
            return ProbeAnswer(False, None, "ConnectError", 1)
        return ProbeAnswer(True, 200, None, 1)

    def _call(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        if self.outages > 0:
            self.outages -= 1
            raise PartnerUnavailable("the partner is down")

    def member_match(
        self,
        partner: Partner,
        parameters: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> MemberMatchResult:
        self._call("member-match", idempotency_key)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return self.match

    def find_member(
        self,
        partner: Partner,
        identifier: tuple[str | None, str],
        *,
        idempotency_key: str,
        timeout: float | None = None,
    ) -> str:
        self._call("find-member", idempotency_key)
        if self.found is None:
            raise NoMatch("the partner finds no Patient with that identifier")
        return self.found

    def everything(self, partner: Partner, read: RecordRead) -> Retrieved:
        self._call("everything", read.idempotency_key)
        self.since_asked = read.since
        if self.page_missing_until_last:
            if not read.keep_partial:
                raise PartnerUnavailable("page 2 of $everything: the partner is down")
            bundle = orjson.loads(self.bundle)
            gap = Gap("old-plan $everything page 2", ("unknown",), "source-unavailable", "down")
            bundle["entry"] = [*bundle.get("entry", []), outcome_entry([gap])]
            return Retrieved(orjson.dumps(bundle), (len(bundle["entry"]) - 1,))
        return Retrieved(self.bundle, (len(orjson.loads(self.bundle).get("entry") or []),))

    def search_record(self, partner: Partner, read: RecordRead, types: Sequence[str]) -> Retrieved:
        self._call("search:" + ",".join(types), read.idempotency_key)
        return Retrieved(self.bundle, (len(orjson.loads(self.bundle).get("entry") or []),))

    def refresh_credentials(self, partner: Partner) -> None:
        return None


class InMemoryResourceWriter(_Bound):
    """The ``ResourceWriter`` and ``ReceivedStore`` ports: what each source wrote, and the
    resources as held (``rows``: by ref, the resource, its compartment and source)."""

    def __init__(self, exchanges: InMemoryExchangeStore | None = None) -> None:
        self.written: dict[str, list[dict[str, Any]]] = {}
        self.rows: dict[str, tuple[dict[str, Any], str | None, str]] = {}
        self.exchanges = exchanges or InMemoryExchangeStore()

    def _stored_by(self, source: str, held_for: HeldFor) -> bool:
        record = self.exchanges.records.get(source.removeprefix("exchange:"))
        return (
            source.startswith("exchange:")
            and record is not None
            and (record.client_id, record.member_key, record.partner_id)
            == (held_for.client_id, held_for.member_key, held_for.partner_id)
        )

    def write(
        self,
        unit: InMemoryUnitOfWork,
        resources: list[tuple[dict[str, Any], str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None:
        self.written.setdefault(source, []).extend(r for r, _ in resources)
        for resource, patient in resources:
            ref = f"{resource['resourceType']}/{resource['id']}"
            self.rows[ref] = (copy.deepcopy(resource), patient, source)

    def held_refs(self, held_for: HeldFor) -> list[str]:
        return sorted(
            ref for ref, (_, _, source) in self.rows.items() if self._stored_by(source, held_for)
        )

    def remove(self, refs: Sequence[str]) -> None:
        for ref in refs:
            self.rows.pop(ref, None)

    def with_identifiers(
        self,
        patient_ids: Sequence[str],
        keys: Sequence[tuple[str, str, str]],
        *,
        other_than: HeldFor,
    ) -> list[dict[str, Any]]:
        wanted = set(keys)
        return [
            resource
            for ref, (resource, patient, source) in sorted(self.rows.items())
            if patient in patient_ids
            and wanted & set(identifier_keys(resource))
            and not self._stored_by(source, other_than)
        ]

    def plan_patients(self, member_id: str) -> list[dict[str, Any]]:
        return [
            resource
            for ref, (resource, _, source) in sorted(self.rows.items())
            if ref.startswith("Patient/")
            and not source.startswith(("exchange:", "onboarding:"))
            and any(i.get("value") == member_id for i in resource.get("identifier") or ())
        ]

    def source_patients(
        self, patient_ids: Sequence[str], *, other_than: HeldFor
    ) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for ref, (resource, patient, source) in sorted(self.rows.items()):
            record = self.exchanges.records.get(source.removeprefix("exchange:"))
            if (
                ref.startswith("Patient/")
                and patient in patient_ids
                and record is not None
                and not self._stored_by(source, other_than)
            ):
                found.append((record.partner_id, resource))
        return found


class InMemoryBreakerStore(_Bound):
    """The ``BreakerStore`` port: breakers by endpoint, rates by partner (the use case
    moves them by the pure breaker model)."""

    def __init__(self) -> None:
        self.states: dict[str, BreakerState] = {}
        self.rates: dict[str, datetime] = {}  # partner -> when its next call is due
        self.partners: dict[str, PartnerId] = {}  # endpoint -> the partner it was locked for

    def get(self, endpoint: str) -> BreakerState:
        return self.states.get(endpoint, BreakerState())

    def lock(self, endpoint: str, partner_id: str, *, at: datetime) -> BreakerState:
        self.partners[endpoint] = PartnerId(partner_id)
        return self.states.setdefault(endpoint, BreakerState())

    def save(
        self,
        endpoint: str,
        partner_id: str,
        state: BreakerState,
        *,
        at: datetime,
    ) -> None:
        self.states[endpoint] = state

    def admit_rate(self, partner_id: str, limit: RateLimit, *, now: datetime) -> datetime | None:
        wait, due = limit.admit(self.rates.get(partner_id), now)
        if wait is None:
            self.rates[partner_id] = due
        return wait

    def unhealthy(self) -> list[tuple[str, PartnerId, BreakerState]]:
        return [
            (endpoint, self.partners.get(endpoint, PartnerId("old-plan")), state)
            for endpoint, state in self.states.items()
            if state.status is not BreakerStatus.CLOSED
        ]


class InMemoryPullSchedules(_Bound):
    """The ``PullSchedules`` port in memory (the request kept beside, cut on stop)."""

    def __init__(self) -> None:
        self.rows: dict[str, PullSchedule] = {}
        self.requests: dict[str, dict[str, Any] | None] = {}

    def add(self, schedule: PullSchedule, request: dict[str, Any]) -> None:
        self.rows[schedule.id], self.requests[schedule.id] = schedule, request

    def get(self, schedule_id: str) -> PullSchedule:
        return self.rows[schedule_id]

    def all(self, *, status: Any = None, client_id: Any = None, limit: Any = None) -> Any:
        return [s for s in self.rows.values() if status is None or s.status is status]

    def due(self, now: datetime) -> list[PullSchedule]:
        return [
            s
            for s in self.rows.values()
            if s.status.value == "active" and s.next_due_at is not None and s.next_due_at <= now
        ]

    def page(
        self, *, status: Any = None, kind: Any = None, offset: int = 0, count: int = 50
    ) -> Any:
        found = [s for s in self.all(status=status) if kind is None or s.kind is kind]
        return len(found), found[offset : offset + count]

    def request(self, schedule_id: str) -> dict[str, Any] | None:
        return self.requests.get(schedule_id)

    def update(self, schedule_id: str, **values: Any) -> None:
        if values.get("status") == "stopped":
            self.requests[schedule_id] = None
        fields = {**values}
        if "status" in fields:
            fields["status"] = type(self.rows[schedule_id].status)(fields["status"])
        if "kind" in fields:
            fields["kind"] = type(self.rows[schedule_id].kind)(fields["kind"])
        self.rows[schedule_id] = dataclasses.replace(self.rows[schedule_id], **fields)


class InMemoryConsentStore:
    """The ``ConsentStore`` port."""

    def __init__(self) -> None:
        self.consents: dict[str, StoredConsent] = {}

    def add(
        self, unit: InMemoryUnitOfWork, consent: StoredConsent, *, event: AuditEvent
    ) -> StoredConsent:
        record = consent.record
        for kept in self.consents.values():
            same = (kept.record.member_id, kept.role, kept.record.client_id)
            if same == (record.member_id, consent.role, record.client_id) and (
                kept.record.resource_hash == record.resource_hash
            ):
                return kept
        self.consents[consent.consent_id] = consent
        unit.record(event)
        return consent

    def get(self, consent_id: str) -> StoredConsent | None:
        return self.consents.get(consent_id)

    def for_member(self, member_id: str, role: ConsentRole) -> list[StoredConsent]:
        return [
            c for c in self.consents.values() if c.record.member_id == member_id and c.role is role
        ]

    def for_members(
        self, member_ids: Sequence[str], role: ConsentRole, *, resources: bool = True
    ) -> dict[str, list[StoredConsent]]:
        found = {member: self.for_member(member, role) for member in member_ids}
        if resources:
            return found
        return {m: [dataclasses.replace(c, resource={}) for c in cs] for m, cs in found.items()}

    def members_disclosed_to(self, client_id: str) -> list[str]:
        return sorted(
            {
                c.record.member_id
                for c in self.consents.values()
                if c.record.client_id == client_id
                and c.role is ConsentRole.DISCLOSE
                and c.record.revoked_at is None
            }
        )

    def revoke(
        self, unit: InMemoryUnitOfWork, consent_id: str, *, at: datetime, by: str
    ) -> StoredConsent:
        stored = self.consents.get(consent_id)
        if stored is None:
            raise NotFound(f"Consent/{consent_id} does not exist")
        result = dataclasses.replace(stored, record=revoke(stored.record, at=at, by=by))
        self.consents[consent_id] = result
        return result


class InMemoryIdentityStore:
    """The identity room's ``IdentityIndex`` and ``ReviewQueue`` ports, over members given
    as Patients (and their Coverages), indexed as the SQL store indexes them."""

    def __init__(self, secret: bytes = b"fake-identity-secret-of-32-bytes!") -> None:
        self._secret = secret
        self.patients: dict[str, dict[str, Any]] = {}
        self.records: dict[str, StandardRecord] = {}
        self._keys: dict[str, set[str]] = {}  # blocking key -> member ids
        self.attempts: dict[tuple[str, str, str], datetime] = {}
        self.decisions: dict[str, tuple[MatchDecision, str]] = {}  # id -> (decision, client)
        self.reviews: dict[str, ReviewCase] = {}
        self.requests: dict[str, StandardRecord] = {}  # review id -> the request
        self.links: list[IdentityLink] = []
        self.audit = InMemoryAuditLog()

    def add_member(self, patient: dict[str, Any], coverage: dict[str, Any] | None = None) -> None:
        member_id = patient["id"]
        record = record_from_fhir(patient, coverage)
        self.patients[member_id], self.records[member_id] = patient, record
        for key in blocking_keys(record, secret=self._secret):
            self._keys.setdefault(key, set()).add(member_id)

    # -- IdentityIndex ---------------------------------------------------------------------

    @property
    def blocking_secret(self) -> bytes:
        return self._secret

    def keyed_hash(self, *parts: str | None) -> str:
        return hmac.digest(self._secret, orjson.dumps(list(parts)), "sha256").hex()

    def candidates(self, keys: Iterable[str]) -> list[tuple[MemberId, StandardRecord]]:
        merged = self.merged_into(self.records)
        found = sorted({m for key in keys for m in self._keys.get(key, ())} - set(merged))
        return [(MemberId(m), self.records[m]) for m in found]

    def candidates_of_many(
        self, key_sets: Sequence[frozenset[str]]
    ) -> list[list[tuple[MemberId, StandardRecord]]]:
        return [self.candidates(keys) for keys in key_sets]

    def member_count(self) -> int:
        return len(self.records)

    def active_model(self, spec_fingerprint: str) -> StoredModel | None:
        return None

    def latest_review(self, client_id: str, request_key: str) -> ReviewCase | None:
        cases = [
            c
            for c in self.reviews.values()
            if (c.client_id, c.request_key) == (client_id, request_key)
        ]
        return max(cases, key=lambda c: c.opened_at) if cases else None

    def merged_into(self, member_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(member_ids)
        return {
            link.member_id: link.value
            for link in self.links
            if link.kind == LinkKind.MERGED_INTO and link.member_id in wanted
        }

    def match_writes(self, unit: InMemoryUnitOfWork) -> _InMemoryMatchWrites:
        """The request's writes in ``unit`` (a rollback puts the store back)."""
        return _InMemoryMatchWrites(self, unit)

    # -- ReviewQueue -----------------------------------------------------------------------

    def review(self, review_id: str) -> ReviewCase | None:
        return self.reviews.get(review_id)

    def decide_review(
        self, unit: InMemoryUnitOfWork, decision: ReviewDecision, *, at: datetime
    ) -> ReviewCase | None:
        case = self.reviews.get(decision.review_id)
        if case is None or case.status != "open" or case.version != decision.version:
            return None
        decided = dataclasses.replace(
            case,
            status="accepted" if decision.accept else "rejected",
            member_id=decision.member_id,
            reviewer=decision.reviewer,
            reason=decision.reason,
            decided_at=at,
            version=case.version + 1,
        )
        self.reviews[decision.review_id] = decided
        return decided

    def reopen_review(
        self, unit: InMemoryUnitOfWork, review_id: str, *, version: int
    ) -> ReviewCase | None:
        case = self.reviews.get(review_id)
        if case is None or case.status == "open" or case.version != version:
            return None
        reopened = dataclasses.replace(
            case,
            status="open",
            member_id=None,
            reviewer=None,
            reason=None,
            decided_at=None,
            version=case.version + 1,
        )
        self.reviews[review_id] = reopened
        return reopened

    def end_link(self, unit: InMemoryUnitOfWork, link: IdentityLink, *, at: datetime) -> None:
        self.links = [
            dataclasses.replace(k, valid_to=at)
            if (k.member_id, k.kind, k.value, k.valid_to)
            == (link.member_id, link.kind, link.value, None)
            else k
            for k in self.links
        ]

    # -- what showing a case reads ---------------------------------------------------------

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        found = self.decisions.get(decision_id)
        if found is None:
            return None
        decision, client_id = found
        return {
            "id": decision.decision_id,
            "outcome": decision.outcome.value,
            "requester": client_id,
            "evidence": decision.evidence.to_dict(),
        }

    def review_request(self, review_id: str) -> StandardRecord | None:
        return self.requests.get(review_id)

    def records_of(
        self, member_ids: Sequence[str]
    ) -> list[tuple[MemberId, StandardRecord, list[str]]]:
        return [(MemberId(m), self.records[m], []) for m in member_ids if m in self.records]

    def add_links(self, unit: InMemoryUnitOfWork, links: Sequence[IdentityLink]) -> None:
        current = {
            (k.member_id, k.kind, k.system, k.value) for k in self.links if k.valid_to is None
        }
        self.links.extend(
            link
            for link in links
            if (link.member_id, link.kind, link.system, link.value) not in current
        )


def identity_unit(
    store: InMemoryIdentityStore,
    *,
    at: datetime | None = None,
    transactions: InMemoryTransactions | None = None,
    members: Any = None,
) -> IdentityUnit:
    """The identity room's unit over ``store`` (ADR 0051): its transactions begin at
    ``at`` when given; ``members`` for a merge's check that both Patients exist."""
    if transactions is None:
        clock = None if at is None else (lambda: at)
        transactions = InMemoryTransactions(store.audit, store, clock=clock)
    obligations = shipped_obligations(BusinessCalendar("America/New_York", frozenset({5, 6})))
    return IdentityUnit(transactions, store, members, obligations, None, store.audit)


class _InMemoryMatchWrites:
    """``MatchWrites``, applied to the store at once."""

    def __init__(self, store: InMemoryIdentityStore, unit: InMemoryUnitOfWork) -> None:
        self._store = store
        self._unit = unit

    def note_attempt(
        self,
        *,
        client_id: str,
        demographics_key: str,
        card_key: str,
        at: datetime,
        window: timedelta,
    ) -> list[datetime]:
        self._store.attempts[(client_id, demographics_key, card_key)] = at
        return sorted(
            when
            for (client, demographics, _), when in self._store.attempts.items()
            if (client, demographics) == (client_id, demographics_key) and when > at - window
        )

    def record_decision(
        self,
        decision: MatchDecision,
        *,
        client_id: str,
        request_key: str,
        review: ReviewOpening | None,
        event: AuditEvent,
    ) -> None:
        store = self._store
        store.decisions[decision.decision_id] = (decision, client_id)
        if review is not None:
            store.requests[review.id] = review.request
            store.reviews[review.id] = ReviewCase(
                id=review.id,
                decision_id=decision.decision_id,
                status="open",
                client_id=client_id,
                request_key=request_key,
                candidate_ids=tuple(decision.candidate_ids),
                opened_at=decision.evidence.decided_at,
                member_id=None,
                reviewer=None,
                reason=None,
                decided_at=None,
                opened_because=decision.evidence.review_reason,
                risk=review.priority.risk,
                due_at=review.priority.due_at,
                policy=review.policy,
            )
        self._unit.record(event)

    def patient(self, member_id: str) -> dict[str, Any] | None:
        return self._store.patients.get(member_id)

    def resource_types(self, member_id: str) -> set[str]:
        return {"Patient", "Coverage"} if member_id in self._store.patients else set()

    def assign_identifier(
        self, patient: dict[str, Any], identifier: dict[str, Any], *, at: datetime
    ) -> None:
        identifiers = [*(patient.get("identifier") or []), identifier]
        self._store.patients[patient["id"]] = {**patient, "identifier": identifiers}

    def add_links(self, links: Sequence[IdentityLink]) -> None:
        self._store.links.extend(links)


class InMemoryClientDirectory:
    """The ``ClientDirectory`` port."""

    def __init__(self, *clients: RegisteredClient) -> None:
        self.clients = {c.client_id: c for c in clients}

    def get(self, client_id: ClientId) -> RegisteredClient | None:
        return self.clients.get(client_id)

    def list(self) -> list[RegisteredClient]:
        return sorted(self.clients.values(), key=lambda c: c.client_id)

    def add(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        if client.client_id in self.clients:
            raise StoreConflict("a client with this id exists")
        self.clients[client.client_id] = client

    def update(self, unit: UnitOfWork, client: RegisteredClient, *, at: datetime) -> None:
        before = self.clients[client.client_id]
        if before.npi != client.npi:
            return  # the NPI never changes (as the SQL store's WHERE)
        if client.npi_evidence is not OrganizationEvidence.CERTIFICATE:
            client = dataclasses.replace(
                client,
                npi_evidence=before.npi_evidence,
                npi_vouched_by=before.npi_vouched_by,
                npi_vouched_at=before.npi_vouched_at,
            )
        self.clients[client.client_id] = dataclasses.replace(client, revoked_at=before.revoked_at)

    def approve(
        self, unit: UnitOfWork, client_id: ClientId, npi: str, *, by: str, at: datetime
    ) -> bool:
        client = self.clients.get(client_id)
        if client is None or client.is_revoked or client.npi != npi:
            return False
        if not client.is_awaiting_approval:
            return False
        self.clients[client_id] = dataclasses.replace(
            client,
            npi_evidence=OrganizationEvidence.OPERATOR,
            npi_vouched_by=by,
            npi_vouched_at=at,
        )
        return True

    def revoke(self, unit: UnitOfWork, client_id: ClientId, *, at: datetime) -> bool:
        client = self.clients.get(client_id)
        if client is None or client.is_revoked:
            return False
        self.clients[client_id] = dataclasses.replace(client, revoked_at=at)
        return True


class InMemoryAssertionLedger:
    """The ``AssertionLedger`` port: the jti each client used, until when."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, str], datetime] = {}

    def remember(
        self, unit: UnitOfWork, client_id: ClientId, token_id: str, *, until: datetime
    ) -> None:
        if (client_id, token_id) in self.used:
            raise StoreConflict("this assertion was used before")
        self.used[(client_id, token_id)] = until

    def forget_expired(self, unit: UnitOfWork, *, now: datetime) -> int:
        expired = [key for key, until in self.used.items() if until < now]
        for key in expired:
            del self.used[key]
        return len(expired)


class StaticKeySets:
    """The ``KeySetSource`` port: JWK Sets by URL, as given."""

    def __init__(self, sets: dict[str, dict[str, Any]] | None = None) -> None:
        self.sets = dict(sets or {})
        self.fetched: list[str] = []

    def fetch(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        if url not in self.sets:
            raise PartnerUnavailable(f"nothing is published at {url}")
        return self.sets[url]


class InMemoryMemberData:
    """The disclosure room's ``MemberData`` port: each member's compartment, and the
    shared resources that are no member's."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, MemberId] = {}

    def add(self, member_id: MemberId | None, *resources: dict[str, Any]) -> None:
        for resource in resources:
            key = f"{resource['resourceType']}/{resource['id']}"
            self.resources[key] = resource
            if member_id is not None:
                self.owners[key] = member_id

    def compartment(self, patient_id: MemberId) -> list[dict[str, Any]]:
        return [self.resources[key] for key, owner in self.owners.items() if owner == patient_id]

    def stream_compartment(self, patient_id: MemberId) -> Iterator[dict[str, Any]]:
        yield from self.compartment(patient_id)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self.resources.get(f"{resource_type}/{resource_id}")

    def read_many(self, refs: Iterable[str]) -> list[dict[str, Any]]:
        return [self.resources[ref] for ref in refs if ref in self.resources]

    def resource_types(self, patient_id: MemberId) -> set[str]:
        return {r["resourceType"] for r in self.compartment(patient_id)}

    def owner_of(self, resource_type: str, resource_id: str) -> MemberId | None:
        return self.owners.get(f"{resource_type}/{resource_id}")

    def find_refs_by_token(
        self, resource_type: str, param: str, value: str, system: str | None = None
    ) -> list[str]:
        return [
            key
            for key, resource in self.resources.items()
            if resource["resourceType"] == resource_type
            and any(
                token.get("value") == value and system in (None, token.get("system"))
                for token in resource.get(param, [])
            )
        ]


class InMemoryDisclosureSnapshots:
    """The ``DisclosureSnapshots`` port: a snapshot's entries numbered from 1, each page
    reading its resources from ``members`` as they are now (None when gone)."""

    def __init__(self, members: InMemoryMemberData) -> None:
        self._members = members
        self.snapshots: dict[str, Snapshot] = {}
        self.entries: dict[str, list[PageEntry]] = {}

    def save(self, unit: UnitOfWork, snapshot: Snapshot, entries: Iterable[PageEntry]) -> None:
        self.snapshots[snapshot.id] = snapshot
        self.entries[snapshot.id] = list(entries)

    def get(self, snapshot_id: str) -> Snapshot | None:
        return self.snapshots.get(snapshot_id)

    def page(
        self, snapshot_id: str, *, after: int, count: int
    ) -> list[tuple[int, str, dict[str, Any] | None, bool]]:
        numbered = enumerate(self.entries.get(snapshot_id, []), start=1)
        rows = []
        for seq, entry in numbered:
            resource = self._members.resources.get(entry.ref)
            now = (resource or {}).get("meta", {}).get("versionId")
            judged = entry.version is not None and now == str(entry.version)
            rows.append((seq, entry.mode, resource, judged))
        return [row for row in rows if row[0] > after][:count]

    def purge(self, unit: UnitOfWork, *, now: datetime) -> int:
        expired = [key for key, s in self.snapshots.items() if s.expires_at < now]
        for key in expired:
            del self.snapshots[key], self.entries[key]
        return len(expired)


class FakeLiveSources:
    """The disclosure room's ``LiveRecords`` port: a member's live records as set up by
    the test (resources and gaps), kept into ``members`` when the page keeps them."""

    def __init__(self, members: InMemoryMemberData) -> None:
        self.members = members
        self.answers: dict[MemberId, tuple[list[dict[str, Any]], list[SourceGap]]] = {}
        self.asked: list[tuple[MemberId, frozenset[str] | None]] = []

    def holds(self, member: MemberId) -> bool:
        return member in self.answers

    def ask(
        self, member: MemberId, types: frozenset[str] | None, since: datetime | None
    ) -> LiveAnswers:
        if member not in self.answers:
            return LiveAnswers(member)  # no source holds the member: nothing asked
        self.asked.append((member, types))
        spec = LiveSourceSpec(
            id="clinical",
            mode="live",
            mapping="fhir-server-quirks@1.0.0",
            base_url="https://fhir.plan.example",
            types=["Condition"],
        )
        query = RecordsQuery("their-id", types, since)
        return LiveAnswers(member, [AskedSource(spec, query, SourceAnswer())])

    def keep(self, unit: object, answers: LiveAnswers) -> list[SourceGap]:
        resources, gaps = self.answers[answers.member]
        self.members.add(answers.member, *resources)
        return list(gaps)
