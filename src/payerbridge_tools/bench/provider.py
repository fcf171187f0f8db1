"""``payerbridge bench provider`` (issue 72, ADR 0059): a provider attributed a sample of
a large plan's members exports them in bulk (``Group/provider-<NPI>/$davinci-data-
export``, ``provider-download``), beside the payer-to-payer export of the same members
(their MatchedMembers Groups, ``payertopayer``), on the same database and the same
kind of server. The population, its sample and the servers are ``bench.bulk``'s."""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from joserfc.jwk import ECKey

from payerbridge.partners.auth import token_form
from payerbridge_tools.bench import bulk
from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.bench.machine import machine_lines

__all__ = ["ProviderBench", "report_markdown", "run_provider"]

_PROVIDER_NPI = "1679576722"
_PROVIDER_CLIENT = "bench-provider"
_PROVIDER_SCOPE = "system/*.rs system/Group.r"
_PROVIDER_EXPORT = quote("hl7.fhir.us.davinci-pdex#provider-download", safe="")


@dataclass(frozen=True)
class ProviderBench:
    backend: str
    population: int
    members: int  # attributed to the provider, and matched for the payer
    load_seconds: float
    roster_seconds: float
    payer: bulk.ExportRun  # the payer-to-payer export of the matched members
    provider: bulk.ExportRun  # the provider's export of its Group


def _provider_key() -> ECKey:
    key = ECKey.generate_key("P-384", private=True)
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def _attribute(data_dir: Path, database_url: str, members: Sequence[str], key: ECKey) -> float:
    """The sample attributed to the provider by a roster, and its client registered;
    the roster's load time."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.provider_access.rosters import OPEN_END, RosterEntry
    from payerbridge.provider_access.service import LoadRoster, load_roster
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client
    from payerbridge.types import MemberId

    settings = load_settings(data_dir=data_dir, database_url=database_url, log_level="WARNING")
    platform = build_platform(settings)
    try:
        start = date.today() - timedelta(days=30)
        entries = tuple(
            RosterEntry(_PROVIDER_NPI, MemberId(m), start, OPEN_END, f"line {n}")
            for n, m in enumerate(members, start=2)
        )
        started = time.perf_counter()
        load_roster(LoadRoster("bench", entries, "bench"), platform.units.provider_access())
        seconds = time.perf_counter() - started
        jwks = {"keys": [{**key.as_dict(private=False), "kid": key.kid}]}
        client = smart_client(
            _PROVIDER_CLIENT, "Bench Clinic", _PROVIDER_NPI, _PROVIDER_SCOPE, ClientKeys(jwks=jwks)
        )
        add_client(AddClient(client, "bench"), platform.units.security())
        return seconds
    finally:
        platform.close()


@contextmanager
def _as_provider(server: bulk._Server, key: ECKey) -> Iterator[bulk._Server]:
    """The same server, its client the provider's."""
    base = str(server.client.base_url).rstrip("/")
    form = token_form(key, _PROVIDER_CLIENT, f"{base}/auth/token", _PROVIDER_SCOPE)
    answer = httpx.post(f"{base}/auth/token", data=form, timeout=30, trust_env=False)
    answer.raise_for_status()
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}",
               "Accept": "application/fhir+json"}  # fmt: skip
    with httpx.Client(base_url=base, headers=headers, timeout=600, trust_env=False) as client:
        yield bulk._Server(server.pids, client)


def _provider_export(
    server: bulk._Server, members: int, say: Callable[[str], None]
) -> bulk.ExportRun:
    """The provider's Group exported, its files downloaded as the job completes."""
    downloads = bulk._Downloads(server.client)
    rss_start = server.memory_mb("VmRSS")
    usage = bulk._Usage.since(server)
    started = time.perf_counter()
    url = bulk._kick_off(
        server.client,
        f"/fhir/Group/provider-{_PROVIDER_NPI}/$davinci-data-export?exportType={_PROVIDER_EXPORT}",
    )
    bulk._await_jobs(server.client, [url], 1, downloads.take, lambda m: say(f"provider: {m}"))
    seconds = time.perf_counter() - started
    usage = bulk._Usage.since(server, usage)
    return bulk.ExportRun(
        share=1.0,
        groups=1,
        members=members,
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


def run_provider(
    *,
    population: int,
    members: int,
    backend: str,
    admin_url: str,
    seed: int,
    progress: Callable[[str], None],
) -> ProviderBench:
    """The population loaded, the sample attributed and matched, both exports run by a
    freshly started server each (see the module)."""
    data = generate_identity_set(population, seed=seed, requests=0)
    sampled = random.Random(seed).sample(range(data.member_count), members)
    root = Path(tempfile.mkdtemp(prefix="pb-bench-provider-"))
    try:
        path = root / "population.ndjson"
        bulk.write_population(data, sampled, path)
        most = min(bulk.KICK_OFF_MEMBERS, math.ceil(members / 20))
        batches = bulk.kick_offs(data, sampled, most_members=most, most_bytes=bulk._REQUEST_LIMIT)
        ids = [data.member_id(i) for i in sampled]
        del data
        data_dir = root / backend
        data_dir.mkdir()
        with bulk._database(backend, data_dir, admin_url) as database_url:
            loaded = bulk._load(data_dir, database_url, path)
            progress(f"loaded {loaded.resources:,} resources in {loaded.import_seconds:.0f}s")
            key = _provider_key()
            roster = _attribute(data_dir, database_url, ids, key)
            progress(f"{len(ids):,} members attributed by roster in {roster:.1f}s")
            serving = (data_dir, database_url, loaded.key, 2, 0)
            with bulk._serving(*serving) as server:
                _, groups = bulk._match(server, batches, 4, progress)
            with bulk._serving(*serving) as server:
                payer = bulk._export(server, groups, 1.0, 4, progress)
            progress(f"payer-to-payer: {payer.resources:,} resources in {payer.seconds:.1f}s")
            with bulk._serving(*serving) as server, _as_provider(server, key) as provider:
                theirs = _provider_export(provider, len(ids), progress)
            progress(f"provider: {theirs.resources:,} resources in {theirs.seconds:.1f}s")
        return ProviderBench(
            backend, population, len(ids), loaded.import_seconds, roster, payer, theirs
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _row(name: str, run: bulk.ExportRun) -> str:
    return (
        f"| {name} | {run.groups} | {run.members:,} | {run.resources:,} | {run.skipped} | "
        f"{run.megabytes:,.0f} | {run.seconds:.1f} | {run.resources_per_second:,.0f} | "
        f"{run.rss_start_mb:.0f} → {run.rss_peak_mb:.0f} | {run.server_cpu_seconds:.0f} |"
    )


def report_markdown(run: ProviderBench, *, seed: int) -> str:
    """The report: both exports side by side."""
    lines = [
        "# Provider Access export beside payer-to-payer",
        "",
        f"`payerbridge bench provider` (issue 72, ADR 0059). A plan of {run.population:,} "
        f"members (`bench.identity_data`, seed {seed}) imported into a fresh "
        f"{bulk.backend_name(run.backend)} database; a random sample of {run.members:,} of "
        "them, each with two Conditions, two Observations and an EOB, is attributed to one "
        "provider by a roster, and matched by `$bulk-member-match` for a payer (its "
        "consent `regular`). Each export is run by a freshly started `payerbridge serve` "
        "(jobs in its process, two of one client's at once): the payer's MatchedMembers "
        "Groups all kicked off at once, the provider's one Group as one job. Time runs "
        "from the first kick-off to the last byte downloaded. One run each.",
        "",
        *machine_lines(),
        "",
        f"- population loaded in {run.load_seconds:.0f} s; roster of {run.members:,} "
        f"loaded in {run.roster_seconds:.1f} s",
        "",
        "| export | jobs | members | resources | members left out | MB | s | resources/s | "
        "server RSS MB | server CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row("payer-to-payer (`payertopayer`)", run.payer),
        _row("provider (`provider-download`)", run.provider),
        "",
        "Resources by type: payer-to-payer "
        + ", ".join(f"{k} {v:,}" for k, v in run.payer.by_type.items())
        + "; provider "
        + ", ".join(f"{k} {v:,}" for k, v in run.provider.by_type.items())
        + ".",
        "",
    ]
    return "\n".join(lines)
