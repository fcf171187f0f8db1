"""``payerbridge bench bulk``: ``$bulk-member-match`` of a sample of a large population,
then ``$davinci-data-export`` of the members it matched, against a real server process.

The old payer's population comes from ``bench.identity_data`` (a Patient and a Coverage
per member); the members to be matched also get a few records of care (Conditions,
Observations, an ExplanationOfBenefit citing one of a few shared Organizations), so
the export has something to carry. Per backend (SQLite in a temporary dir, or a fresh
PostgreSQL database) the bench:

1. imports the population and indexes it, trains and activates a model (as
   ``payerbridge import`` and ``identity train`` do), registers the new payer as a
   SMART client;
2. starts ``payerbridge serve`` (API and bulk worker in one process) and submits the
   sample as a client does: several kick-offs of at most ``KICK_OFF_MEMBERS`` members
   each (fewer where the request size limit asks), all at once, each MemberBundle built
   as an exchange builds a ``$member-match`` request (the members' own demographics and
   card, the opt-in as HRex Consent). The match time runs from the first kick-off to
   the last job's manifest;
3. restarts the server and exports the MatchedMembers Groups covering a tenth of the
   matched members, then restarts it again and exports them all: every Group's export
   kicked off at once, each job's files downloaded as soon as it completes. The export
   time runs from the first kick-off to the last byte; the server's peak resident memory
   (``VmHWM``) is read after each, so the two sizes show whether memory grows with it.

Nothing about the people (names, dates, member ids) is logged or printed.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge.config import Settings
from payerbridge.consent.model import ConsentId
from payerbridge.exchange.intake.opt_in import OptIn, opt_in_consent
from payerbridge.exchange.model import (
    ConsentGrant,
    ExchangeRequest,
)
from payerbridge.fhir.member_match import MEMBER_PATIENT_REF, build_member_match_request
from payerbridge.members import Address, CoverageCard, MemberDemographics
from payerbridge.partners.auth import token_form
from payerbridge.routing.model import Organization, Partner
from payerbridge.security.model import BULK_MEMBER_MATCH_SCOPES
from payerbridge.types import ClientId, MemberId, PartnerId
from payerbridge_tools.bench.identity_data import IdentitySet, Relationship, generate_identity_set
from payerbridge_tools.bench.machine import machine_lines, process_cpu_seconds

__all__ = [
    "KICK_OFF_MEMBERS",
    "BulkRun",
    "ExportRun",
    "KickOff",
    "MatchRun",
    "backend_name",
    "kick_offs",
    "report_markdown",
    "run_bulk",
    "verdicts",
    "write_population",
]

KICK_OFF_MEMBERS = 2000  # the most a client sends per kick-off, within the request size limit
# The server under test is the old payer; the client is the new payer asking for its members.
_OLD = Partner(PartnerId("old-plan"), "Old Plan", "1245319599", "http://old.example/fhir")
_NEW = Organization("New Plan", "1234567893")
# As the requests name us: with a FHIR base, whose NamingSystem holds our member ids.
_ASKING = Organization(_NEW.name, _NEW.npi, "https://new-plan.example")
_CLIENT_ID = "bench-new-plan"
_SCOPE = f"system/*.rs {BULK_MEMBER_MATCH_SCOPES[0]}"
_EXPORT_TYPE = "hl7.fhir.us.davinci-pdex#payertopayer"
_EXPORT_SHARES = (0.1, 1.0)
_SHARED_ORGANIZATIONS = 50
_POLL_SECONDS = 0.25
# The server's request size limit: it runs with the default (no PAYERBRIDGE_ variable reaches it).
_REQUEST_LIMIT = int(Settings.model_fields["max_request_bytes"].default)
_JOB_TIMEOUT_SECONDS = 3600
_SNOMED, _LOINC = "http://snomed.info/sct", "http://loinc.org"
_CONDITIONS = (
    ("38341003", "Hypertension"),
    ("55822004", "Hyperlipidemia"),
    ("44054006", "Type 2 diabetes mellitus"),
    ("195967001", "Asthma"),
    ("239873007", "Osteoarthritis of knee"),
)
_OBSERVATIONS = (
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 128),
    ("4548-4", "Hemoglobin A1c", "%", 6),
    ("2093-3", "Cholesterol", "mg/dL", 190),
    ("29463-7", "Body weight", "kg", 80),
)


@dataclass(frozen=True)
class MatchRun:
    members: int
    kick_offs: int
    kick_off_seconds: float  # until the last kick-off was accepted
    seconds: float  # first kick-off to the last job's manifest
    matched: int
    not_matched: int
    consent_constrained: int
    rss_start_mb: float
    rss_peak_mb: float
    server_cpu_seconds: float
    machine_cpu_seconds: float

    @property
    def members_per_second(self) -> float:
        return self.members / self.seconds


@dataclass(frozen=True)
class ExportRun:
    share: float
    groups: int
    members: int
    resources: int  # NDJSON lines downloaded, the error file's left out
    skipped: int  # lines of the error file: members the export left out
    megabytes: float
    seconds: float  # first kick-off to the last byte of the last file
    download_seconds: float  # of which the bench spent downloading
    rss_start_mb: float
    rss_peak_mb: float
    server_cpu_seconds: float
    machine_cpu_seconds: float
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def resources_per_second(self) -> float:
        return self.resources / self.seconds


@dataclass(frozen=True)
class BulkRun:
    backend: str
    population: int
    resources_imported: int
    import_seconds: float
    train_seconds: float
    concurrency: int
    workers: int  # job worker processes beside the API process (0: the API runs the jobs)
    kick_off_members: int  # the most in one kick-off
    match: MatchRun
    exports: list[ExportRun]


@dataclass(frozen=True)
class _Group:
    id: str
    members: int


# -- the data --------------------------------------------------------------------------------


def _clinical(index: int, patient_id: str, today: date) -> list[dict[str, Any]]:
    """Two Conditions, two Observations and a claim of the member's, all plain (nothing a
    ``regular`` consent withholds) and dated inside the payer-to-payer window."""
    subject = {"reference": f"Patient/{patient_id}"}

    def day(back: int) -> str:
        return str(today - timedelta(days=(index * 37 + back) % 1400))

    records: list[dict[str, Any]] = []
    for k in range(2):
        code, text = _CONDITIONS[(index + k) % len(_CONDITIONS)]
        records.append({
            "resourceType": "Condition", "id": f"{patient_id}-c{k}",
            "clinicalStatus": {"coding": [{"code": "active", "system":
                "http://terminology.hl7.org/CodeSystem/condition-clinical"}]},
            "code": {"coding": [{"system": _SNOMED, "code": code, "display": text}]},
            "subject": subject, "onsetDateTime": day(k * 90),
        })  # fmt: skip
        code, text, unit, value = _OBSERVATIONS[(index + k) % len(_OBSERVATIONS)]
        records.append({
            "resourceType": "Observation", "id": f"{patient_id}-o{k}", "status": "final",
            "code": {"coding": [{"system": _LOINC, "code": code, "display": text}]},
            "subject": subject, "effectiveDateTime": day(k * 30),
            "valueQuantity": {"value": value + index % 7, "unit": unit},
        })  # fmt: skip
    records.append({
        "resourceType": "ExplanationOfBenefit", "id": f"{patient_id}-eob", "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                             "code": "professional"}]},
        "use": "claim", "patient": subject, "created": day(10), "outcome": "complete",
        "insurer": {"display": _OLD.name},
        "provider": {"reference": f"Organization/bench-clinic-{index % _SHARED_ORGANIZATIONS}"},
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/cov-{index}"}}],
        "item": [{"sequence": 1, "servicedDate": day(10), "productOrService": {"coding": [
            {"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}}],
    })  # fmt: skip
    return records


def write_population(data: IdentitySet, sampled: Sequence[int], path: Path) -> int:
    """Every member's Patient and Coverage, the sampled members' records of care and the
    Organizations those cite, one line each; the number of resources written."""
    today = date.today()
    chosen = set(sampled)
    written = 0
    with path.open("wb") as out:
        for n in range(_SHARED_ORGANIZATIONS):
            clinic = {"resourceType": "Organization", "id": f"bench-clinic-{n}",
                      "name": f"Bench Clinic {n}"}  # fmt: skip
            out.write(orjson.dumps(clinic, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
        for i in range(data.member_count):
            resources = list(data.member_resources(i))
            if i in chosen:
                resources += _clinical(i, data.member_id(i), today)
            for resource in resources:
                out.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            written += len(resources)
    return written


def _repoint(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``reference`` to ``old`` pointing at ``new`` instead."""
    if isinstance(node, dict):
        return {
            key: new if key == "reference" and value == old else _repoint(value, old, new)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_repoint(item, old, new) for item in node]
    return node


def _member_bundle(
    data: IdentitySet, i: int, consent: dict[str, Any], position: int
) -> dict[str, Any]:
    """Member ``i`` as a MemberBundle: its own demographics and card, as an exchange asks
    ``$member-match``, its Patient submitted under an id of its own."""
    fields = data.member_fields(i)
    address = Address(tuple(fields["address_lines"]), None, None, fields["postal_code"])
    member = MemberDemographics(
        tuple(fields["given"]),
        fields["family"],
        date.fromisoformat(fields["birth_date"]),
        fields.get("sex", "unknown"),
        address,
        fields.get("phone"),
    )
    relationship = Relationship(data.relationship[i]).code
    request = ExchangeRequest(
        old_payer=_OLD.id,
        member=member,
        old_coverage=CoverageCard(
            fields.get("member_id"), fields.get("subscriber_id"), relationship
        ),
        new_coverage=CoverageCard(f"NP{i:09d}", None, "self"),
        consent=None,
    )
    parameters = build_member_match_request(request, consent, us=_ASKING, partner=_OLD.organization)
    submitted = f"sub-{position}"
    parts: list[dict[str, Any]] = _repoint(
        parameters["parameter"], MEMBER_PATIENT_REF, f"Patient/{submitted}"
    )
    for part in parts:
        if part["name"] == "MemberPatient":
            part["resource"]["id"] = submitted
    return {"name": "MemberBundle", "part": parts}


def _opt_in() -> dict[str, Any]:
    """The HRex Consent each member presents: disclose to the new payer, regular data."""
    today = date.today()
    grant = ConsentGrant(
        "regular", today - timedelta(days=1), today + timedelta(days=365), "DocumentReference/x"
    )
    stored = opt_in_consent(
        OptIn(grant, MemberId("bench"), _OLD, ClientId(_CLIENT_ID)),
        consent_id=ConsentId("bench"),
        us=_NEW,
        zone=ZoneInfo("UTC"),
        at=datetime.now(UTC),
    )
    return stored.resource


@dataclass(frozen=True)
class KickOff:
    members: int
    body: bytes  # the Parameters, serialised before any clock starts


_OPEN, _CLOSE = b'{"resourceType":"Parameters","parameter":[', b"]}"


def kick_offs(
    data: IdentitySet, sampled: Sequence[int], *, most_members: int, most_bytes: int
) -> list[KickOff]:
    """The sampled members in kick-offs of at most ``most_members`` MemberBundles and
    ``most_bytes`` bytes each."""
    consent = _opt_in()
    found: list[KickOff] = []
    bundles: list[bytes] = []
    size = len(_OPEN) + len(_CLOSE)
    for position, i in enumerate(sampled):
        bundle = orjson.dumps(_member_bundle(data, i, consent, position))
        if bundles and (len(bundles) == most_members or size + len(bundle) + 1 > most_bytes):
            found.append(KickOff(len(bundles), _OPEN + b",".join(bundles) + _CLOSE))
            bundles, size = [], len(_OPEN) + len(_CLOSE)
        bundles.append(bundle)
        size += len(bundle) + 1  # and its comma
    if bundles:
        found.append(KickOff(len(bundles), _OPEN + b",".join(bundles) + _CLOSE))
    return found


# -- the instance ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    key: ECKey  # the new payer's private key
    resources: int
    import_seconds: float  # on PostgreSQL with the import's ANALYZE of what it wrote
    train_seconds: float


def _load(data_dir: Path, database_url: str, path: Path) -> _Loaded:
    """Import and index ``path``, train and activate a model, register the new payer."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.identity.service import TrainModel, train_on_members
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client

    settings = load_settings(
        data_dir=data_dir, database_url=database_url, org_npi=_OLD.npi, log_level="WARNING"
    )
    platform = build_platform(settings)
    try:
        started = time.perf_counter()
        report = platform.import_members(path)
        if not report.accepted:  # line numbers only: the messages may quote the data
            lines = ", ".join(str(e.line) for e in report.errors[:5])
            raise RuntimeError(f"the bench population was rejected (first lines: {lines})")
        imported = time.perf_counter() - started
        started = time.perf_counter()
        train_on_members(TrainModel(seed=42), platform.units.identity())
        trained = time.perf_counter() - started
        key = ECKey.generate_key("P-384", private=True)
        key = ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})
        jwks = {"keys": [{**key.as_dict(private=False), "kid": key.kid}]}
        client = smart_client(_CLIENT_ID, _NEW.name, _NEW.npi, _SCOPE, ClientKeys(jwks=jwks))
        add_client(AddClient(client, "bench"), platform.units.security())
        return _Loaded(key, report.resources, imported, trained)
    finally:
        platform.close()


@contextmanager
def _database(backend: str, data_dir: Path, admin_url: str) -> Iterator[str]:
    """SQLite in ``data_dir``, or a fresh PostgreSQL database dropped afterwards. Named
    explicitly either way, so an ambient PAYERBRIDGE_DATABASE_URL is never touched."""
    if backend == "sqlite":
        yield f"sqlite:///{(data_dir / 'payerbridge.db').resolve()}"
        return
    import psycopg

    name = f"pbbench_bulk_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class _Server:
    """The API process and the job workers beside it (if any), and a client of the API."""

    pids: tuple[int, ...]  # the API process first
    client: httpx.Client

    def memory_mb(self, field_name: str) -> float:
        """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of the largest process."""
        return max(_process_memory_mb(pid, field_name) for pid in self.pids)

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the processes have spent so far, added up."""
        return sum(process_cpu_seconds(pid) for pid in self.pids)


def _process_memory_mb(pid: int, field_name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _machine_busy_seconds() -> float:
    """CPU time every core has spent busy so far (idle and I/O wait left out)."""
    ticks = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Usage:
    """CPU seconds over a phase: the server's, and the whole machine's (the bench client,
    the database server and anything else running count there too)."""

    server: float
    machine: float

    @classmethod
    def since(cls, server: _Server, before: _Usage | None = None) -> _Usage:
        now = cls(server.cpu_seconds(), _machine_busy_seconds())
        if before is None:
            return now
        return cls(now.server - before.server, now.machine - before.machine)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving(
    data_dir: Path, database_url: str, key: ECKey, concurrency: int, workers: int
) -> Iterator[_Server]:
    """``payerbridge serve`` on a free port, with a client holding the new payer's token;
    with ``workers``, the API process runs no jobs and that many ``payerbridge worker``
    processes share them (the deployment ADR 0018 describes for bulk at scale)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYERBRIDGE_")}
    env.update(
        PAYERBRIDGE_DATABASE_URL=database_url,
        PAYERBRIDGE_ORG_NPI=_OLD.npi,
        PAYERBRIDGE_LOG_LEVEL="WARNING",
        PAYERBRIDGE_BULK_CLIENT_CONCURRENCY=str(concurrency),
        PAYERBRIDGE_BULK_WORKER_CONCURRENCY=str(_worker_concurrency(concurrency, workers)),
        # One token for the server's whole life, and the bench polls as often as it likes.
        PAYERBRIDGE_ACCESS_TOKEN_SECONDS="3600",
        PAYERBRIDGE_RATE_LIMIT_PER_SECOND="0",
        # And the kick-offs' own rate (ADR 0025): the bench sends its batches at once.
        PAYERBRIDGE_RATE_LIMITS='{"POST /fhir/Group/$bulk-member-match": '
        '{"per_minute": 0, "burst": 1}}',
    )

    def payerbridge(*args: str) -> list[str]:
        return [sys.executable, "-m", "payerbridge", *args, "--data-dir", str(data_dir)]

    serve = payerbridge("serve", "--host", "127.0.0.1", "--port", str(port))
    commands = [serve + (["--no-workers"] if workers else [])]
    commands += [payerbridge("worker", "--worker-id", f"bench-bulk-{n}") for n in range(workers)]
    log = data_dir / "server.log"
    processes: list[subprocess.Popen[bytes]] = []
    base = f"http://127.0.0.1:{port}"
    try:
        with log.open("ab") as out:
            for command in commands:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        _wait_healthy(processes[0], base, log)
        _wait_workers(processes[1:], log)
        form = token_form(key, _CLIENT_ID, f"{base}/auth/token", _SCOPE)
        answer = httpx.post(f"{base}/auth/token", data=form, timeout=30, trust_env=False)
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}",
                   "Accept": "application/fhir+json"}  # fmt: skip
        with httpx.Client(base_url=base, headers=headers, timeout=600, trust_env=False) as client:
            yield _Server(tuple(p.pid for p in processes), client)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _worker_concurrency(concurrency: int, workers: int) -> int:
    """Jobs each process takes at once: the client's jobs spread over the workers, one
    process per core rather than several jobs sharing one interpreter."""
    return max(4, concurrency) if workers == 0 else math.ceil(concurrency / workers)


def _wait_healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the server exited early:\n{tail}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


def _wait_workers(workers: Sequence[subprocess.Popen[bytes]], log: Path) -> None:
    """Until each worker says it is running (it has joined the queues)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for process in workers:
            if process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"a worker exited early:\n{tail}")
        text = log.read_text(errors="replace")
        if all(f"worker bench-bulk-{n} running" in text for n in range(len(workers))):
            return
        time.sleep(0.2)
    raise RuntimeError("the workers did not start")


# -- the jobs --------------------------------------------------------------------------------


def _kick_off(client: httpx.Client, url: str, body: bytes | None = None) -> str:
    headers = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
    answer = client.post(url, content=body, headers=headers)
    if answer.status_code != 202:
        raise RuntimeError(f"kick-off refused: HTTP {answer.status_code} {answer.text[:300]}")
    return answer.headers["Content-Location"]


def _await_jobs(
    client: httpx.Client,
    status_urls: Sequence[str],
    window: int,
    on_done: Callable[[dict[str, Any]], None],
    progress: Callable[[str], None],
) -> None:
    """Poll the jobs until each has its manifest, passed to ``on_done`` as it comes.

    The queue starts jobs in the order they came, so only the first ``window`` jobs
    still running are polled each round: polling all of them would take the server's
    time from the jobs."""
    pending = list(status_urls)
    deadline = time.monotonic() + _JOB_TIMEOUT_SECONDS
    every = max(1, len(status_urls) // 10)  # progress now and then, not job by job
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} bulk jobs did not finish in time")
        still: list[str] = []
        for n, url in enumerate(pending):
            if n >= window:
                still.append(url)
                continue
            answer = client.get(url)
            if answer.status_code == 200:
                on_done(answer.json())
            elif answer.status_code == 202:
                still.append(url)
            else:
                raise RuntimeError(
                    f"a bulk job ended HTTP {answer.status_code}: {answer.text[:300]}"
                )
        done_before, done = len(status_urls) - len(pending), len(status_urls) - len(still)
        if done // every > done_before // every or (done > done_before and not still):
            progress(f"{done} of {len(status_urls)} jobs done")
        pending = still
        if pending:
            time.sleep(_POLL_SECONDS)


def _download(client: httpx.Client, url: str) -> tuple[int, int]:
    """Stream one bulk file to its end: its lines and bytes."""
    lines = size = 0
    with client.stream("GET", url, headers={"Accept": "application/fhir+ndjson"}) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"a bulk file answered HTTP {answer.status_code}")
        for chunk in answer.iter_bytes():
            lines += chunk.count(b"\n")
            size += len(chunk)
    return lines, size


def _match(
    server: _Server, batches: Sequence[KickOff], window: int, say: Callable[[str], None]
) -> tuple[MatchRun, list[_Group]]:
    """Every kick-off at once, then each job's manifest; the MatchedMembers Groups."""
    client = server.client
    rss_start = server.memory_mb("VmRSS")
    usage = _Usage.since(server)
    started = time.perf_counter()
    urls = [_kick_off(client, "/fhir/Group/$bulk-member-match", b.body) for b in batches]
    kicked = time.perf_counter() - started
    say(f"match: {len(urls)} kick-offs accepted in {kicked:.1f}s")
    manifests: list[dict[str, Any]] = []
    _await_jobs(client, urls, window, manifests.append, lambda m: say(f"match: {m}"))
    seconds = time.perf_counter() - started
    usage = _Usage.since(server, usage)
    rss_peak = server.memory_mb("VmHWM")
    buckets = dict.fromkeys(("match", "nomatch", "consentconstraint"), 0)
    groups = []
    for manifest in manifests:
        for entry in manifest["output"]:
            answer = client.get(entry["url"], headers={"Accept": "application/fhir+ndjson"})
            for line in answer.content.splitlines():
                group = orjson.loads(line)
                result = group["code"]["coding"][0]["code"]
                buckets[result] += len(group.get("member", []))
                if result == "match" and group.get("member"):
                    groups.append(_Group(group["id"], len(group["member"])))
    run = MatchRun(
        members=sum(b.members for b in batches),
        kick_offs=len(batches),
        kick_off_seconds=kicked,
        seconds=seconds,
        matched=buckets["match"],
        not_matched=buckets["nomatch"],
        consent_constrained=buckets["consentconstraint"],
        rss_start_mb=rss_start,
        rss_peak_mb=rss_peak,
        server_cpu_seconds=usage.server,
        machine_cpu_seconds=usage.machine,
    )
    return run, groups


def _share_of(groups: Sequence[_Group], share: float) -> list[_Group]:
    """The first Groups holding at least ``share`` of the matched members."""
    wanted = share * sum(g.members for g in groups)
    chosen: list[_Group] = []
    for group in groups:
        if chosen and sum(g.members for g in chosen) >= wanted:
            break
        chosen.append(group)
    return chosen


@dataclass
class _Downloads:
    """What the export's files held, tallied as each job's files are downloaded."""

    client: httpx.Client
    by_type: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    size: int = 0
    seconds: float = 0.0

    def take(self, manifest: dict[str, Any]) -> None:
        started = time.perf_counter()
        for entry in manifest["output"]:
            lines, size = _download(self.client, entry["url"])
            self.by_type[entry["type"]] = self.by_type.get(entry["type"], 0) + lines
            self.size += size
        for entry in manifest.get("error", []):
            lines, size = _download(self.client, entry["url"])
            self.skipped += lines
            self.size += size
        self.seconds += time.perf_counter() - started


def _export(
    server: _Server, groups: Sequence[_Group], share: float, window: int, say: Callable[[str], None]
) -> ExportRun:
    """Each chosen Group's export kicked off at once, each job's files downloaded as it
    completes."""
    chosen = _share_of(groups, share)
    query = f"exportType={quote(_EXPORT_TYPE, safe='')}"
    downloads = _Downloads(server.client)
    rss_start = server.memory_mb("VmRSS")
    usage = _Usage.since(server)
    started = time.perf_counter()
    urls = [
        _kick_off(server.client, f"/fhir/Group/{group.id}/$davinci-data-export?{query}")
        for group in chosen
    ]
    _await_jobs(
        server.client, urls, window, downloads.take, lambda m: say(f"export {share:.0%}: {m}")
    )
    seconds = time.perf_counter() - started
    usage = _Usage.since(server, usage)
    return ExportRun(
        share=share,
        groups=len(chosen),
        members=sum(g.members for g in chosen),
        resources=sum(downloads.by_type.values()),
        skipped=downloads.skipped,
        megabytes=downloads.size / 1e6,
        seconds=seconds,
        download_seconds=downloads.seconds,
        rss_start_mb=rss_start,
        rss_peak_mb=server.memory_mb("VmHWM"),
        server_cpu_seconds=usage.server,
        machine_cpu_seconds=usage.machine,
        by_type=dict(sorted(downloads.by_type.items())),
    )


# -- the run ---------------------------------------------------------------------------------


def run_bulk(
    *,
    population: int,
    members: int,
    backends: Sequence[str],
    admin_url: str,
    concurrency: int,
    workers: int,
    seed: int,
    progress: Callable[[str], None],
    on_run: Callable[[list[BulkRun]], object] | None = None,
) -> list[BulkRun]:
    """One run per backend (``sqlite``, ``postgres``) on the same population and sample;
    ``on_run`` receives the runs so far as each backend's completes."""
    if not 0 < members <= population:
        raise ValueError("members must be between 1 and the population")
    started = time.perf_counter()
    data = generate_identity_set(population, seed=seed, requests=0)
    sampled = random.Random(seed).sample(range(data.member_count), members)
    # Enough kick-offs that the smaller export is made of whole Groups, as many as run at
    # once: both exports then run the same number of jobs at a time, and their peak
    # memory differs only by what the export's size costs.
    most_members = min(KICK_OFF_MEMBERS, math.ceil(members / (10 * concurrency)))
    root = Path(tempfile.mkdtemp(prefix="pb-bench-bulk-"))
    try:
        path = root / "population.ndjson"
        written = write_population(data, sampled, path)
        batches = kick_offs(data, sampled, most_members=most_members, most_bytes=_REQUEST_LIMIT)
        largest = max(len(b.body) for b in batches) / 2**20
        progress(
            f"generated {written:,} resources and {len(batches)} kick-offs (largest "
            f"{largest:.1f} MiB) in {time.perf_counter() - started:.0f}s"
        )
        del data
        plan = _Plan(population, concurrency, workers, admin_url, path, batches)
        runs: list[BulkRun] = []
        for backend in backends:
            runs.append(_one_backend(backend, root, plan, progress))
            if on_run is not None:
                on_run(runs)
        return runs
    finally:
        if os.environ.get("PAYERBRIDGE_BENCH_KEEP"):  # to read a failed run's server log
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class _Plan:
    population: int
    concurrency: int
    workers: int
    admin_url: str
    path: Path  # the population as NDJSON
    batches: Sequence[KickOff]


def _one_backend(backend: str, root: Path, plan: _Plan, progress: Callable[[str], None]) -> BulkRun:
    def say(message: str) -> None:
        progress(f"{backend}: {message}")

    data_dir = root / backend
    data_dir.mkdir()
    # The jobs running and as many next in line.
    window = plan.concurrency * 2
    with _database(backend, data_dir, plan.admin_url) as database_url:
        loaded = _load(data_dir, database_url, plan.path)
        say(
            f"imported {loaded.resources:,} resources in {loaded.import_seconds:.0f}s, "
            f"trained in {loaded.train_seconds:.0f}s"
        )
        with _serving(data_dir, database_url, loaded.key, plan.concurrency, plan.workers) as server:
            match, groups = _match(server, plan.batches, window, say)
        say(f"matched {match.matched:,} of {match.members:,} in {match.seconds:.1f}s")
        exports = []
        for share in _EXPORT_SHARES:
            # A fresh process each time: its peak memory is this export's alone.
            with _serving(
                data_dir, database_url, loaded.key, plan.concurrency, plan.workers
            ) as server:
                exports.append(_export(server, groups, share, window, say))
            say(
                f"exported {exports[-1].resources:,} resources in {exports[-1].seconds:.1f}s, "
                f"peak {exports[-1].rss_peak_mb:.0f} MB"
            )
    if not os.environ.get("PAYERBRIDGE_BENCH_KEEP"):
        shutil.rmtree(data_dir, ignore_errors=True)
    return BulkRun(
        backend=backend,
        population=plan.population,
        resources_imported=loaded.resources,
        import_seconds=loaded.import_seconds,
        train_seconds=loaded.train_seconds,
        concurrency=plan.concurrency,
        workers=plan.workers,
        kick_off_members=max(b.members for b in plan.batches),
        match=match,
        exports=exports,
    )


# -- the report ------------------------------------------------------------------------------

_MATCH_TARGET_MEMBERS, _MATCH_TARGET_SECONDS = 100_000, 60.0
_EXPORT_TARGET_PER_SECOND = 20_000
# Memory counts as flat when the full export's peak is within this much of the smaller one's.
_FLAT_GROWTH = 0.10
_FLAT_SLACK_MB = 32.0
_BACKEND_NAMES = {"sqlite": "SQLite (WAL)", "postgres": "PostgreSQL"}


def backend_name(backend: str) -> str:
    return _BACKEND_NAMES.get(backend, backend)


def is_memory_flat(run: BulkRun) -> bool:
    small, full = run.exports[0], run.exports[-1]
    return full.rss_peak_mb <= small.rss_peak_mb * (1 + _FLAT_GROWTH) + _FLAT_SLACK_MB


def verdicts(run: BulkRun) -> list[str]:
    """Each target of the issue, met or not on this run, in words."""
    match, full = run.match, run.exports[-1]
    at_target = _MATCH_TARGET_MEMBERS / match.members_per_second
    lines = []
    if match.members == _MATCH_TARGET_MEMBERS:
        met = "met" if match.seconds < _MATCH_TARGET_SECONDS else "NOT met"
        lines.append(f"100k members matched in under 60 s: **{met}** ({match.seconds:.1f} s).")
    else:
        lines.append(
            f"100k members matched in under 60 s: **not measured at that size** "
            f"({match.members:,} members here; at {match.members_per_second:,.0f} members/s "
            f"100k would take about {at_target:.0f} s)."
        )
    met = "met" if full.resources_per_second >= _EXPORT_TARGET_PER_SECOND else "NOT met"
    lines.append(
        f"export at least 20,000 resources/s: **{met}** "
        f"({full.resources_per_second:,.0f} resources/s over {full.resources:,} resources)."
    )
    small = run.exports[0]
    flat = "met" if is_memory_flat(run) else "NOT met"
    lines.append(
        f"memory flat as the export grows: **{flat}** (peak {small.rss_peak_mb:.0f} MB "
        f"exporting {small.resources:,} resources, {full.rss_peak_mb:.0f} MB exporting "
        f"{full.resources:,}; flat means within {_FLAT_GROWTH:.0%} + {_FLAT_SLACK_MB:.0f} MB)."
    )
    return lines


def _topology(workers: int) -> str:
    if workers == 0:
        return "one `payerbridge serve` process (API and bulk worker in one process)"
    return (
        "one `payerbridge serve --no-workers` process (the API) and "
        f"{workers} `payerbridge worker` process{'es' if workers > 1 else ''} (the jobs)"
    )


def report_markdown(runs: Sequence[BulkRun], *, seed: int, note: str = "") -> str:
    first = runs[0]
    lines = [
        "# Bulk benchmark: $bulk-member-match and $davinci-data-export",
        "",
        f"Generated by `payerbridge bench bulk`. A population of {first.population:,} "
        "members (`bench.identity_data`, seed "
        f"{seed}: a Patient and a Coverage each) is imported into a fresh database and "
        "indexed, and a model trained and activated. A random sample of "
        f"{first.match.members:,} of its members, each with two Conditions, two "
        "Observations and an ExplanationOfBenefit citing one of "
        f"{_SHARED_ORGANIZATIONS} shared Organizations, is sent to "
        f"{_topology(first.workers)} as a client sends it: "
        f"{first.match.kick_offs} `$bulk-member-match` kick-offs of at most "
        f"{first.kick_off_members:,} MemberBundles, all at once, each built as an "
        "exchange builds `$member-match` (the member's own demographics and card, the "
        "opt-in as a `regular` HRex Consent naming this client). Match time runs from the "
        "first kick-off to the last job's manifest.",
        "",
        "The MatchedMembers Groups are then exported (`Group/{id}/$davinci-data-export`, "
        "payer-to-payer), first those holding a tenth of the matched members, then all "
        "of them, each time by a freshly started server: every Group's export kicked off "
        "at once, each job's files downloaded (streamed, "
        "`Accept: application/fhir+ndjson`) as soon as it completes. Export time runs "
        "from the first kick-off to the last byte; resources are the lines downloaded "
        "(the error file left out). Peak RSS is the largest server process's `VmHWM` "
        "after the phase; the start is its `VmRSS` once healthy; server CPU is the "
        "processes' added up. Each number is one run.",
        "",
        *machine_lines(),
        f"- settings: bulk_client_concurrency {first.concurrency} (jobs of one client "
        f"at once), bulk_worker_concurrency "
        f"{_worker_concurrency(first.concurrency, first.workers)} (per process), "
        "bulk_chunk_members "
        "500 (default), max_request_bytes 5 MiB (default)",
        "",
        "## Load (not part of the targets)",
        "",
        "| backend | population | resources imported | import + index s | training s |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {backend_name(r.backend)} | {r.population:,} | {r.resources_imported:,} | "
            f"{r.import_seconds:.0f} | {r.train_seconds:.0f} |"
            for r in runs
        ),
        "",
        "## $bulk-member-match",
        "",
        "| backend | members | kick-offs | kick-offs accepted s | match s | members/s | "
        "matched | not matched | consent-constrained | server RSS MB (start → peak) | "
        "server CPU s | machine CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {backend_name(r.backend)} | {r.match.members:,} | {r.match.kick_offs} | "
            f"{r.match.kick_off_seconds:.1f} | {r.match.seconds:.1f} | "
            f"{r.match.members_per_second:,.0f} | {r.match.matched:,} | "
            f"{r.match.not_matched:,} | {r.match.consent_constrained:,} | "
            f"{r.match.rss_start_mb:.0f} → {r.match.rss_peak_mb:.0f} | "
            f"{r.match.server_cpu_seconds:.2f} | {r.match.machine_cpu_seconds:.0f} |"
            for r in runs
        ),
        "",
        "## Export of the matched members",
        "",
        "| backend | share | Groups | members | resources | members left out | MB | "
        "export s | of which downloading s | resources/s | server RSS MB (start → peak) | "
        "server CPU s | machine CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {backend_name(r.backend)} | {e.share:.0%} | {e.groups} | {e.members:,} | "
            f"{e.resources:,} | {e.skipped:,} | {e.megabytes:,.0f} | {e.seconds:.1f} | "
            f"{e.download_seconds:.1f} | {e.resources_per_second:,.0f} | "
            f"{e.rss_start_mb:.0f} → {e.rss_peak_mb:.0f} | {e.server_cpu_seconds:.2f} | "
            f"{e.machine_cpu_seconds:.0f} |"
            for r in runs
            for e in r.exports
        ),
        "",
        "Resources by type in the full export: "
        + "; ".join(
            f"{backend_name(r.backend)}: "
            + ", ".join(f"{kind} {count:,}" for kind, count in r.exports[-1].by_type.items())
            for r in runs
        )
        + ".",
        "",
        "## Targets on this machine",
        "",
    ]
    for run in runs:
        lines.append(f"{backend_name(run.backend)}:")
        lines.append("")
        lines += [f"- {verdict}" for verdict in verdicts(run)]
        lines.append("")
    if note:
        lines += [note, ""]
    return "\n".join(lines)
