"""Bulk export jobs (old payer): ``Group/{id}/$davinci-data-export`` of a client's
MatchedMembers Group, and ``Patient/$export`` of the members whose consent names it.

Each member's consent is decided when the job reaches it (§pdex-167), as ``$everything``
decides it, with its audit event; a member it does not permit is skipped and named in the
error file, not why. For a permitted member the job decides what goes as the first page
of ``$everything`` does (the whole compartment judged, shared resources reached, the
payer-to-payer window) and writes one line per resource to the file of its type: its
body as released (references to what was withheld stripped) and the version judged, with
our transmitter Provenance for what goes. A chunk's members and lines commit with the
job's cursors. A download sends a line's body while its resource is still at that
version and judged by the same code sets; otherwise it releases the resource as it is
then, as a later ``$everything`` page does: gone, it is left out, and under a
``regular`` consent so is anything that has become sensitive since.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson

from payerbridge import big_json
from payerbridge.audit.model import AuditEvent
from payerbridge.bulk.clocks import settle_job_clock, start_job_clock
from payerbridge.bulk.member_match import job_event
from payerbridge.bulk.model import BulkJob, JobKind, JobStatus, OutputFile
from payerbridge.bulk.ports import ExportedMember, LineRead, OutputLine
from payerbridge.bulk.provider_decision import ProviderDecision, provider_terms
from payerbridge.bulk.unit import BulkUnit
from payerbridge.consent.model import (
    ConsentPolicy,
    ConsentRole,
    DisclosureRequest,
    Requester,
    StoredConsent,
    is_own_organization,
)
from payerbridge.consent.segmentation import supported_policies
from payerbridge.consent.service import authorize_disclosure
from payerbridge.disclosure.everything import (
    Compartment,
    EverythingPlan,
    ReleaseTerms,
    SeenShared,
    judged_by,
    plan_everything,
    read_by,
    released_now,
)
from payerbridge.disclosure.model import EverythingQuery
from payerbridge.disclosure.release import SharedResources
from payerbridge.disclosure.window import ExchangeWindow
from payerbridge.errors import Gone, InvalidInput, Issue, NotFound, UnprocessableRequest
from payerbridge.fhir.bulk_export import ExportRequest
from payerbridge.fhir.bulk_member_match import MatchResult
from payerbridge.fhir.provenance import transmitter_provenance
from payerbridge.types import BulkJobId, MemberId

__all__ = [
    "ExportAsked",
    "GroupExportAsked",
    "accept_group_export",
    "accept_members",
    "accept_patient_export",
    "export_file_lines",
    "members_named",
    "run_export",
]

ERROR_FILE = "OperationOutcome"
Resource = dict[str, Any]
# Lines read per round trip while a file is downloaded: the memory a download holds.
_PAGE_LINES = 1000
# The member position of a line that is no member's (the export's notices).
_NO_MEMBER = -1
# Bodies a chunk's lines carry, at most (and a member's records kept for them): lines
# past that are written by reference and their download reads each body then, so a chunk
# of long histories holds no more than a chunk of ordinary ones.
_CHUNK_BODIES = 20_000


@dataclass(frozen=True)
class ExportAsked:
    """An export as kicked off: what was asked (``request``), by whom, at which URL, and
    the request's correlation id."""

    request: ExportRequest
    requester: Requester
    request_url: str
    request_id: str | None


@dataclass(frozen=True)
class GroupExportAsked:
    """The export of a Group (``group_id``, as its path gave it), as kicked off."""

    group_id: str
    asked: ExportAsked


def accept_group_export(command: GroupExportAsked, uow: BulkUnit) -> BulkJob:
    """Record the export of the client's own MatchedMembers Group (or of the ``patient``
    members it names); the caller enqueues its workflow."""
    group_id, asked = command.group_id, command.asked
    request, requester = asked.request, asked.requester
    now = uow.clock()
    group = uow.jobs.group(group_id)
    if group is None or group.client_id != requester.client_id:
        raise NotFound(f"Group/{group_id[:64]} does not exist")
    if group.expires_at <= now:
        raise Gone(
            f"Group/{group_id[:64]} has expired; match the members again",
            issues=[Issue("the Group has expired", "Group", "deleted")],
        )
    if group.result != MatchResult.MATCHED:
        text = "only a MatchedMembers Group can be exported: its members are ours"
        raise UnprocessableRequest(text, issues=[Issue(text, "Group.code", "business-rule")])
    members = [
        MemberId(str(member["entity"]["reference"]).removeprefix("Patient/"))
        for member in group.body.get("member", [])
    ]
    members = list(dict.fromkeys(members))  # one Patient matched twice is exported once
    members = members_named(members, request.patients, group_id)
    return accept_members(uow, JobKind.GROUP_EXPORT, members, asked, now)


def members_named(
    members: list[MemberId], patients: Sequence[MemberId] | None, group_id: str
) -> list[MemberId]:
    """The Group's ``members`` that the export's ``patient`` parameter names (all, when it
    names none); a named Patient the Group does not hold is refused, each one named."""
    if patients is None:
        return members
    held, named = set(members), set(patients)
    strangers = [p for p in patients if p not in held]
    if strangers:
        issues = [
            Issue(f"Patient/{p} is not a member of Group/{group_id}", "patient", "not-found")
            for p in strangers
        ]
        raise InvalidInput("patient names members the Group does not hold", issues=issues)
    return [p for p in members if p in named]


def accept_patient_export(asked: ExportAsked, uow: BulkUnit) -> BulkJob:
    """Record the export of every member whose consent names the client (or of the
    ``patient`` members named: each is decided when the job reaches it). The plan's own
    organization exports every member it holds received records for (ADR 0052)."""
    request = asked.request
    if request.patients is not None:
        members = list(request.patients)
    elif is_own_organization(asked.requester, uow.rules.us.npi):
        members = uow.members.received_members()
    else:
        members = uow.consents.members_disclosed_to(asked.requester.client_id)
    now = uow.clock()
    return accept_members(uow, JobKind.PATIENT_EXPORT, members, asked, now)


def accept_members(
    uow: BulkUnit, kind: JobKind, members: list[MemberId], asked: ExportAsked, now: datetime
) -> BulkJob:
    """Record an export job of ``members`` (each decided again when the job reaches her)
    with its answer clock and audit event."""
    requester = asked.requester
    job = BulkJob(
        id=BulkJobId(uow.mint_id()),
        client_id=requester.client_id,
        requester_npi=requester.npi,
        kind=kind,
        status=JobStatus.ACCEPTED,
        pdex_version="2.2",
        request_url=asked.request_url,
        total=len(members),
        done=0,
        lines=0,
        created_at=now,
        updated_at=now,
        transaction_time=now,
    )
    body = orjson.dumps({"request": asked.request.to_json(), "members": members})
    with uow:
        uow.jobs.create(uow, job, body)
        start_job_clock(uow, job)
        uow.record(job_event(job, kind.value, "accepted", now, asked.request_id, members=job.total))
    return job


def run_export(job_id: BulkJobId, uow: BulkUnit) -> JobStatus:
    """Take the export from where its row says it is to the end (see the module)."""
    job = uow.jobs.get(job_id)
    if job is None:
        return JobStatus.CANCELLED
    if job.finished:
        return job.status
    if job.status is JobStatus.ACCEPTED:
        with uow:
            uow.jobs.start(uow, job_id, at=uow.clock())
    saved = big_json.loads(uow.jobs.request_body(job_id))
    request = ExportRequest.from_json(saved["request"])
    members = [MemberId(member) for member in saved["members"]]
    size = uow.rules.chunk_members
    done, lines = job.done, job.lines
    if request.notices and done == 0 and lines == 0:
        lines = _commit_notices(uow, job, request)
    shared = uow.jobs.shared_refs(job_id)
    while done < len(members):
        chunk = list(enumerate(members[done : done + size], start=done))
        written = _ChunkDecision(uow, job, request, chunk, shared).export(done, lines)
        if written is None:  # cancelled, or another run committed it first
            current = uow.jobs.get(job_id)
            if current is None or current.status is not JobStatus.RUNNING:
                return current.status if current is not None else JobStatus.CANCELLED
            done, lines = current.done, current.lines
            shared = uow.jobs.shared_refs(job_id)
            continue
        done, lines = done + len(chunk), lines + written
    return _complete(uow, job, notices=1 if request.notices else 0)


def _terms(job: BulkJob, policy: ConsentPolicy, uow: BulkUnit, *, windowed: bool) -> ReleaseTerms:
    """What the job's lines go under: for another payer the consent's ``policy``, the
    rule's scope and (``windowed``) the payer-to-payer window; for the plan's own
    organization its whole record, labelled (ADR 0052)."""
    if job.kind is JobKind.PROVIDER_EXPORT:  # whatever was asked: a provider's (ADR 0059)
        return provider_terms(uow, uow.clock())
    rules = uow.rules
    window = ExchangeWindow.at(uow.clock(), years=rules.payer_to_payer_years) if windowed else None
    terms = ReleaseTerms(policy, rules.segmentation, rules.scope, window)
    return read_by(terms, Requester(job.client_id, job.requester_npi), rules.us.npi)


def _commit_notices(uow: BulkUnit, job: BulkJob, request: ExportRequest) -> int:
    """The error file's first line: what the export leaves out of what was asked (types
    the token does not grant, parameters let go under lenient handling). The lines
    committed after it (1, or none if another run wrote it first: the chunks' guard
    then finds the cursor moved)."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": notice.code,
                "details": {"text": notice.text},
                "expression": [notice.parameter],
            }
            for notice in request.notices
        ],
    }
    with uow:
        committed = uow.jobs.commit_export_chunk(
            uow,
            job.id,
            done_before=0,
            lines_before=0,
            members=(),
            lines=[OutputLine(ERROR_FILE, _NO_MEMBER, body=outcome)],
            at=uow.clock(),
        )
    return 1 if committed else 0


class _ChunkDecision:
    """One chunk's members decided, with what the chunk reads once for all of them (their
    consents, resource types and the shared resources they reach), and what it keeps.
    A shared resource goes once per export: with the first member that reaches it (the
    others' Provenance still names it as sent)."""

    def __init__(
        self,
        uow: BulkUnit,
        job: BulkJob,
        request: ExportRequest,
        chunk: Sequence[tuple[int, MemberId]],
        shared_sent: set[str],
    ) -> None:
        self._uow, self._job = uow, job
        self.now = uow.clock()
        self._requester = Requester(client_id=job.client_id, npi=job.requester_npi)
        self._query = EverythingQuery(
            types=request.types,
            since=request.since,
            until=request.until,
            exact_types=request.exact_types,
        )
        self._our_provenance = request.has_our_provenance
        # Decided once a chunk; each member's consent gives its policy, or, for a
        # provider's export, her attribution and opt-outs now (ADR 0059).
        self._positions = {patient_id: position for position, patient_id in chunk}
        self._provider: ProviderDecision | None = None
        if job.kind is JobKind.PROVIDER_EXPORT:
            self._provider = ProviderDecision.of_chunk(uow, job, list(self._positions), self.now)
        self._terms = _terms(job, ConsentPolicy.REGULAR, uow, windowed=True)
        patients = list(self._positions)
        self._types = uow.members.resource_types_of(patients)
        # The decisions read the consents' records: their resources are left unopened.
        self._consents = _Read(
            uow.consents.for_members(patients, ConsentRole.DISCLOSE, resources=False)
        )
        self._shared = _SharedOnce(uow.members)
        self._seen_shared: SeenShared = {}  # each shared resource judged once a chunk
        self._decided: set[MemberId] = set()
        self._shared_sent = shared_sent
        self.shared_new: set[str] = set()  # the shared resources this chunk writes
        self._bodies = 0  # the chunk's lines' bodies so far
        self.exported: list[ExportedMember] = []
        self.lines: list[OutputLine] = []
        self.events: list[AuditEvent] = []

    def export(self, done_before: int, lines_before: int) -> int | None:
        """Decide and keep the chunk's members; the lines written, or None if superseded.
        The shared resources already written grow by the chunk's once kept."""
        uow, job = self._uow, self._job
        # The chunk's compartments come as one stream, one member after another; a member
        # with no compartment at all has no Patient here and is skipped after the rest.
        for patient_id, rows in groupby(self.compartments(), key=itemgetter(0)):
            self.member(patient_id, (resource for _, resource in rows))
        for patient_id in self.undecided():
            self.member(patient_id, ())
        with uow:
            if not uow.jobs.commit_export_chunk(
                uow,
                job.id,
                done_before=done_before,
                lines_before=lines_before,
                members=self.exported,
                lines=self.lines,
                at=self.now,
            ):
                return None
            uow.record(*self.events)
        self._shared_sent |= self.shared_new
        return len(self.lines)

    def compartments(self) -> Iterator[tuple[MemberId, Resource]]:
        return self._uow.members.stream_compartments(list(self._positions))

    def undecided(self) -> list[MemberId]:
        return [p for p in self._positions if p not in self._decided]

    def member(self, patient_id: MemberId, records: Iterable[Resource]) -> None:
        """Decide one member (``records``: its compartment, streamed) and keep its lines."""
        rules = self._uow.rules
        position = self._positions[patient_id]
        self._decided.add(patient_id)
        policy = self._decide(patient_id)
        plan = None
        own = _Kept(_CHUNK_BODIES - self._bodies)  # the member's records, for the bodies
        terms = replace(self._terms, policy=policy or ConsentPolicy.REGULAR)
        if policy is not None:
            plan = plan_everything(
                Compartment(patient_id, own.keeping(records)),
                self._shared,
                terms,
                self._query,
                self._seen_shared,
            )
        if policy is None or plan is None:
            self.exported.append(ExportedMember(position, patient_id, None))
            self.lines.append(OutputLine(ERROR_FILE, position, body=_skipped(position, patient_id)))
            return
        self.exported.append(
            ExportedMember(
                position,
                patient_id,
                policy.value,
                tuple(plan.withheld),
                judged_by(rules.segmentation, terms.scope),
                plan.withheld_count,
            )
        )
        self._member_lines(position, plan, terms, own.whole)
        targets = [
            {"resourceType": kind, "id": rest}
            for kind, _, rest in (entry.ref.partition("/") for entry in plan.entries)
            if kind != "Provenance"
        ]
        if targets and self._our_provenance:
            # Recorded as of the export's transactionTime: the manifest promises nothing
            # changed after it, and the Provenance is part of that snapshot.
            provenance = transmitter_provenance(
                self._uow.mint_id(),
                targets,
                transmitter=rules.us,
                recorded=self._job.transaction_time,
            )
            self.lines.append(OutputLine("Provenance", position, body=provenance))

    def _decide(self, patient_id: MemberId) -> ConsentPolicy | None:
        """The policy the member's lines go under; None: she is skipped. Audited."""
        if self._provider is not None:
            policy, event = self._provider.decide(patient_id)
            self.events.append(event)
            return policy
        rules = self._uow.rules
        disclosure = authorize_disclosure(
            self._consents,
            DisclosureRequest(
                member_id=MemberId(patient_id),
                requester=self._requester,
                at=self.now,
                source_npi=rules.us.npi,
                supported_policies=supported_policies(self._types[patient_id], rules.segmentation),
                hop="bulk-export",
                request_id=self._job.id,
                code_sets=rules.segmentation.code_sets.label,
                scope=self._terms.scope.label,
            ),
        )
        self.events.append(disclosure.event)
        return disclosure.decision.policy if disclosure.decision.permitted else None

    def _member_lines(
        self,
        position: int,
        plan: EverythingPlan,
        terms: ReleaseTerms,
        whole: dict[str, Resource] | None,
    ) -> None:
        """One line per resource the plan lets go (a shared one once per export): its
        body as the decision judged it (stripped and shaped, or labelled) when the
        member's records were kept (``whole``), else its reference, released later."""
        for entry in plan.entries:
            if entry.mode == "include":
                if entry.ref in self._shared_sent or entry.ref in self.shared_new:
                    continue
                self.shared_new.add(entry.ref)
            file = entry.ref.split("/")[0]
            if whole is None:
                self.lines.append(OutputLine(file, position, entry.ref, entry.mode))
                continue
            self._bodies += 1
            resource = whole.get(entry.ref) or self._shared.read(entry.ref)
            version = int(resource["meta"]["versionId"])
            released = released_now(resource, terms, plan.withheld, judged=True)
            if released is None:  # the plan kept it, so the scope does: never unshaped
                continue
            self.lines.append(OutputLine(file, position, entry.ref, entry.mode, released, version))


class _Kept:
    """One member's records as streamed past, by reference, up to ``most``."""

    def __init__(self, most: int) -> None:
        self._most = most
        self.whole: dict[str, Resource] | None = {}  # None: too many to keep

    def keeping(self, records: Iterable[Resource]) -> Iterator[Resource]:
        for resource in records:
            if self.whole is not None:
                if len(self.whole) >= self._most:
                    self.whole = None
                else:
                    self.whole[f"{resource['resourceType']}/{resource['id']}"] = resource
            yield resource


class _SharedOnce:
    """The shared resources a chunk's members reach, each read once for the chunk (the
    same Organizations and Practitioners are reached by many members)."""

    def __init__(self, shared: SharedResources) -> None:
        self._shared = shared
        self._read: dict[str, Resource | None] = {}

    def read_many(self, refs: list[str]) -> list[Resource]:
        missing = [ref for ref in refs if ref not in self._read]
        if missing:
            found = {f"{r['resourceType']}/{r['id']}": r for r in self._shared.read_many(missing)}
            self._read.update((ref, found.get(ref)) for ref in missing)
        return [resource for ref in refs if (resource := self._read[ref]) is not None]

    def read(self, ref: str) -> Resource:
        """One resource ``read_many`` found (a plan's shared entries are such)."""
        resource = self._read[ref]
        assert resource is not None
        return resource


class _Read:
    """A chunk's consents as read once for all its members."""

    def __init__(self, by_member: dict[MemberId, list[StoredConsent]]) -> None:
        self._by_member = by_member

    def for_member(self, member_id: MemberId, role: ConsentRole) -> list[StoredConsent]:
        return self._by_member.get(member_id, []) if role is ConsentRole.DISCLOSE else []


def _skipped(position: int, patient_id: MemberId) -> dict[str, object]:
    """The error file's line for a member the export leaves out (not why: §pdex-156)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "details": {"text": f"Patient/{patient_id} was not exported"},
                "expression": [f"Group.member[{position}]"],
            }
        ],
    }


def _complete(uow: BulkUnit, job: BulkJob, *, notices: int) -> JobStatus:
    """Done: the manifest's files and counts; ``notices``: the error file's lines that
    are the export's notices, not members skipped."""
    now = uow.clock()
    counts = uow.jobs.file_counts(job.id)
    output = [
        OutputFile(kind, f"{kind}.ndjson", counts[kind], error=kind == ERROR_FILE)
        for kind in sorted(counts)
    ]
    skipped = counts.get(ERROR_FILE, 0) - notices
    # Per consent policy, the members released and what their decisions withheld: the
    # export's disclosures, counted once it is complete (metrics.events).
    released = uow.jobs.released_counts(job.id)
    with uow:
        completed = uow.jobs.complete(
            uow,
            job.id,
            groups=(),
            output=output,
            expires_at=now + uow.rules.output_lifetime,
            at=now,
        )
        if completed:
            settle_job_clock(uow, job.id, now)
            uow.record(
                job_event(
                    job,
                    job.kind.value,
                    "completed",
                    now,
                    job.id,
                    lines=sum(counts.values()) - skipped - notices,
                    skipped=skipped,
                    released={policy: n for policy, (n, _) in released.items()},
                    withheld={policy: n for policy, (_, n) in released.items()},
                )
            )
    if completed:
        return JobStatus.COMPLETED
    current = uow.jobs.get(job.id)
    return current.status if current is not None else JobStatus.CANCELLED


def export_file_lines(job: BulkJob, file: OutputFile, uow: BulkUnit) -> Iterator[bytes]:
    """One file of a completed export, as it may go now: a page of lines per item (each
    item is a hop to and from the thread that reads the database, so not one per line)."""
    written_by = _terms(job, ConsentPolicy.SENSITIVE, uow, windowed=False)
    code_sets = judged_by(written_by.segmentation, written_by.scope)
    after = 0
    while True:
        page = uow.jobs.line_page(job.id, file.type, after=after, count=_PAGE_LINES)
        if not page:
            return
        # A resource changed or judged by other code sets since is released as it is now.
        written = [line.ref is None or _as_written(line, code_sets) for line in page]
        stale = [line.ref for line, ok in zip(page, written, strict=True) if not ok and line.ref]
        now: dict[str, Resource] = {}
        if stale:
            now = {f"{r['resourceType']}/{r['id']}": r for r in uow.members.read_many(stale)}
        out: list[bytes] = []
        for line, as_written in zip(page, written, strict=True):
            if as_written or line.ref is None:
                if line.body is not None:
                    out.append(line.body)
                continue
            if line.decision is None or line.decision.policy is None:
                continue
            terms = _terms(job, ConsentPolicy(line.decision.policy), uow, windowed=False)
            resource = released_now(now.get(line.ref), terms, frozenset(line.decision.withheld))
            if resource is not None:
                out.append(orjson.dumps(resource))
        if out:
            out.append(b"")  # the page's last line ends too
            yield b"\n".join(out)
        after = page[-1].seq


def _as_written(line: LineRead, code_sets: str) -> bool:
    """Whether a member's line may go as written: its resource is still at the version
    judged, by the code sets and the data scope in force now."""
    return (
        line.body is not None
        and line.version is not None
        and line.version == line.current_version
        and line.decision is not None
        and line.decision.code_sets == code_sets
    )
