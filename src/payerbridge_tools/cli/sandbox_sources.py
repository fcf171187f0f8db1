"""The demo's partners whose history comes from a plan's own systems (``make run``):

- the **X12/CSV partner** (the network's first source payer): its 834, 837P, 837I,
  conditions CSV and fixed-width labs written from the population
  (``sandbox.source_partners``), ingested by the product's own ingestion (each file
  mapped, checked against its profiles, kept with its Provenance; the 834 feeds the
  identity index), then served like any partner;
- the **FHIR-server partner** (the second): the quirky FHIR server
  (``payerbridge sandbox fhir-source``) serving that payer's population, our partner
  instance registered with it as a SMART Backend Services client, its roster read by
  ``payerbridge sources sync`` into the identity index; its clinical history is asked
  of the server at request time.

Each partner's data directory keeps what it was given (``files/``, ``sources.toml``,
its client key), loaded once: a second ``make run`` reuses them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from payerbridge_tools.cli.sandbox_instances import (
    Instance,
    err,
    launch,
    our_client_id,
    our_key_set,
    out,
    register_client,
    spawn,
    wait_healthy,
)

__all__ = [
    "SOURCE_MEMBERS",
    "SOURCE_PARTNER_LABELS",
    "SourcePartners",
    "exchange_sources",
    "source_ports",
    "start_source_partners",
]

SOURCE_MEMBERS = 30  # each source partner's population: small files, a quick start
SOURCE_PARTNER_LABELS = (
    "X12/CSV files only: 834, 837P/837I, conditions CSV, fixed-width labs",
    "a FHIR server with quirks, asked live",
)
_LOOPBACK = '["127.0.0.0/8", "::1/128"]'


def source_ports(base_port: int, after: int) -> list[tuple[int, str]]:
    """The ports the source partners take after the ``after`` FHIR partners."""
    return [
        (base_port + after, "the X12/CSV partner"),
        (base_port + after + 1, "the FHIR-server partner"),
        (base_port + after + 2, "the FHIR-server partner's FHIR server"),
        (base_port + after + 3, "the plan's own FHIR server, the destination"),
    ]


@dataclass
class SourcePartners:
    """The two partners, each with its payer entry and the request of a member moving
    from it."""

    partners: list[Instance]
    payers: list[dict[str, Any]]
    requests: list[dict[str, Any]]


def start_source_partners(
    data_dir: Path,
    network: dict[str, Any],
    first_port: int,
    us: tuple[str, str],
    instances: list[Instance],
) -> SourcePartners:
    """Give each source partner its data (once), register ``us`` as its client, start
    it (and the FHIR server of the second), each added to ``instances`` as it runs."""
    from payerbridge_tools.population import build_network

    population = build_network(int(network["network_payers"]))
    by_slug = {p.slug: p for p in population.payers}
    x12_payer, fhir_payer = network["source_payers"][:2]
    seed, as_of = int(network["seed"]), date.fromisoformat(network["as_of"])
    our_keys = our_key_set(data_dir)
    x12 = _start_x12_partner(data_dir, x12_payer, population, seed, as_of, first_port)
    fhir = _start_fhir_partner(
        data_dir, fhir_payer, network, first_port + 1, first_port + 2, instances
    )
    partners = []
    for payer, (payer_dir, env) in ((x12_payer, x12), (fhir_payer, fhir)):
        register_client(payer_dir, our_client_id(us[1]), us, _partner_scope(), our_keys)
        port = first_port if payer is x12_payer else first_port + 1
        partners.append(spawn(payer["slug"], payer_dir, port, env, embedded=True))
        instances.append(partners[-1])
    from payerbridge_tools.sandbox.source_partners import fhir_server_switcher, source_switcher

    requests = [
        source_switcher(population, by_slug[x12_payer["slug"]], SOURCE_MEMBERS, seed, as_of),
        fhir_server_switcher(population, by_slug[fhir_payer["slug"]], SOURCE_MEMBERS, seed, as_of),
    ]
    return SourcePartners(partners, [x12_payer, fhir_payer], [r["request"] for r in requests])


def _partner_scope() -> str:
    from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE

    return DEFAULT_PARTNER_SCOPE


def _org_env(payer: dict[str, Any], sources_file: Path) -> dict[str, str]:
    return {
        "PAYERBRIDGE_ORG_NAME": payer["name"],
        "PAYERBRIDGE_ORG_NPI": payer["npi"],
        "PAYERBRIDGE_SOURCES_FILE": str(sources_file),
        # Its sources listen on this machine (ADR 0027: loopback only when allowed).
        "PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS": _LOOPBACK,
    }


def _start_x12_partner(
    data_dir: Path,
    payer: dict[str, Any],
    population: Any,
    seed: int,
    as_of: date,
    port: int,
) -> tuple[Path, dict[str, str]]:
    """Write the partner's files and ingest them, once."""
    from payerbridge_tools.sandbox.source_partners import write_x12_partner

    payer_dir = data_dir / "sandbox" / payer["slug"]
    sources_file = payer_dir / "files" / "sources.toml"
    env = _org_env(payer, sources_file)
    marker = payer_dir / ".loaded"
    if not marker.exists():
        profile = next(p for p in population.payers if p.slug == payer["slug"])
        written = write_x12_partner(
            payer_dir / "files", population, profile, SOURCE_MEMBERS, seed, as_of
        )
        reports = _ingest(payer_dir, sources_file, written.files)
        marker.write_bytes(orjson.dumps(reports))
        kept = sum(sum(r["resources"].values()) for r in reports)
        err.print(
            f"ingested {len(reports)} files of {payer['slug']} ({written.members} members, "
            f"{written.claims} claims): {kept:,} resources kept"
        )
    return payer_dir, env


def _ingest(
    payer_dir: Path, sources_file: Path, files: list[tuple[str, Path]]
) -> list[dict[str, Any]]:
    """Each file through the product's ingestion; any problem or quarantined resource
    stops the demo, naming the file (the generated files must be clean)."""
    from payerbridge.backends.model import FileAt
    from payerbridge.backends.replicated import IngestFile, ingest_file
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    platform = build_platform(
        load_settings(data_dir=payer_dir, database_url=None, sources_file=sources_file)
    )
    try:
        reports = []
        for source_id, path in files:
            command = IngestFile(source_id, path.name, FileAt(path))
            report = ingest_file(command, platform.units.sources())
            if report.problem_count or report.held:
                problems = "; ".join(str(p) for p in report.problems[:5])
                raise RuntimeError(
                    f"{path}: {report.problem_count} problem(s), {report.held} quarantined "
                    f"by {report.mapping}: {problems}"
                )
            reports.append(report.to_json())
        return reports
    finally:
        platform.close()


def _start_fhir_partner(
    data_dir: Path,
    payer: dict[str, Any],
    network: dict[str, Any],
    port: int,
    server_port: int,
    instances: list[Instance],
) -> tuple[Path, dict[str, str]]:
    """Start the plan's FHIR server, write the partner's sources file for it (with a
    key of its own, registered there) and read its roster, once."""
    from payerbridge_tools.sandbox.source_partners import fhir_server_sources

    payer_dir = data_dir / "sandbox" / payer["slug"]
    payer_dir.mkdir(parents=True, exist_ok=True)
    client_id = f"{payer['slug']}-sources"
    key_file, jwks_file = _client_keys(payer_dir)
    server = _spawn_fhir_source(
        payer_dir / "fhir-source",
        server_port,
        [
            "--members",
            str(SOURCE_MEMBERS),
            "--seed",
            str(network["seed"]),
            "--as-of",
            network["as_of"],
            "--payer",
            payer["slug"],
            "--network-payers",
            str(network["network_payers"]),
            "--client-id",
            client_id,
            "--jwks-file",
            str(jwks_file),
            "--export-retry-after",
            "0",
        ],
    )
    instances.append(server)
    wait_healthy([server])
    sources_file = payer_dir / "sources.toml"
    sources_file.write_text(
        fhir_server_sources(f"{server.base_url}/fhir", client_id, key_file.resolve())
    )
    env = _org_env(payer, sources_file)
    marker = payer_dir / ".synced"
    if not marker.exists():
        synced = subprocess.run(
            [sys.executable, "-m", "payerbridge", "sources", "sync", "clinical", "--json"]
            + ["--data-dir", str(payer_dir)],
            capture_output=True,
            text=True,
            env={**os.environ, **env, "PAYERBRIDGE_DATABASE_URL": ""},
            check=False,
        )
        if synced.returncode != 0:
            raise RuntimeError(f"payerbridge sources sync failed: {synced.stderr[-800:]}")
        marker.write_text(synced.stdout)
        report = orjson.loads(synced.stdout)
        err.print(f"synced the roster of {payer['slug']}: {report['members']} members indexed")
    return payer_dir, env


def _client_keys(payer_dir: Path) -> tuple[Path, Path]:
    """The partner's SMART client key (private JWK) and its public JWK Set, made once."""
    key_file, jwks_file = payer_dir / "source-client.jwk", payer_dir / "source-client.jwks"
    if not key_file.exists():
        from joserfc.jwk import ECKey

        key = ECKey.generate_key("P-384", private=True)
        kid = key.thumbprint()
        public = {**key.as_dict(private=False), "kid": kid}
        key_file.write_bytes(orjson.dumps({**key.as_dict(private=True), "kid": kid}))
        key_file.chmod(0o600)
        jwks_file.write_bytes(orjson.dumps({"keys": [public]}))
    return key_file, jwks_file


def _spawn_fhir_source(directory: Path, port: int, args: list[str]) -> Instance:
    argv = [sys.executable, "-m", "payerbridge", "sandbox", "fhir-source", "--port", str(port)]
    argv += args
    return Instance("fhir-source", directory, port, launch(argv, directory, None), argv)


def exchange_sources(data_dir: Path, exchange: dict[str, Any]) -> dict[str, list[str]]:
    """What the platform stored from an exchange came through: the mapping versions on
    the received resources (``meta.tag``) and the source formats their Provenance
    records (PDex ``sourceFormat``)."""
    from payerbridge.backends.mapping import MAPPING_TAG_SYSTEM
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.fhir.codes import PROVENANCE_SOURCE_FORMAT

    patient_id = exchange.get("imported_patient_id")
    if not patient_id:
        return {"mappings": [], "formats": []}
    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        resources = list(platform.members.compartment(patient_id))
    finally:
        platform.close()
    mappings, formats = set(), set()
    for resource in resources:
        for tag in (resource.get("meta") or {}).get("tag") or []:
            if tag.get("system") == MAPPING_TAG_SYSTEM:
                mappings.add(f"{tag.get('code')}@{tag.get('version')}")
        for entity in resource.get("entity") or []:
            for extension in entity.get("extension") or []:
                if extension.get("url") == PROVENANCE_SOURCE_FORMAT:
                    for coding in (extension.get("valueCodeableConcept") or {}).get("coding", []):
                        formats.add(str(coding.get("code")))
    return {"mappings": sorted(mappings), "formats": sorted(formats)}


def print_completeness(exchange: dict[str, Any], sources: dict[str, list[str]]) -> None:
    """An exchange's completeness as ``GET /exchanges/{id}`` gives it, and the mappings
    its data came through."""
    completeness = exchange.get("completeness")
    if completeness is None:
        out.print(f"  completeness: none given (state {exchange['state']})")
    elif completeness.get("complete"):
        out.print("  completeness: complete")
    else:
        out.print(f"  completeness: {exchange['state']}, gaps:")
        for gap in completeness.get("gaps") or []:
            types = ", ".join(gap.get("types") or []) or "unknown types"
            again = "asking again may help" if gap.get("retry_may_help") else "final"
            out.print(f"    source {gap.get('source')}: {types} ({gap.get('code')}; {again})")
    mappings = ", ".join(sources["mappings"]) or "none (FHIR stored as the partner held it)"
    out.print(f"  mappings: {mappings}")
    if sources["formats"]:
        out.print(f"  source formats (Provenance): {', '.join(sources['formats'])}")


def start_destination(data_dir: Path, port: int, instances: list[Instance]) -> Path:
    """Start the plan's own FHIR server (a sandbox FHIR server that takes transactions)
    and write the platform's sources file naming it as the destination of every
    exchange's record (ADR 0053), with a SMART client key of the platform's, registered
    there. The sources file's path."""
    home = data_dir / "sandbox" / "destination"
    home.mkdir(parents=True, exist_ok=True)
    key_file, jwks_file = _client_keys(home)
    server = _spawn_fhir_source(
        home / "fhir-source",
        port,
        ["--members", "1", "--client-id", "platform", "--jwks-file", str(jwks_file)],
    )
    server.name = "plan-fhir"
    instances.append(server)
    wait_healthy([server])
    sources_file = home / "sources.toml"
    sources_file.write_text(
        "# The plan's own FHIR server: every exchange's record is written there (ADR 0053).\n"
        "[[destination]]\n"
        'id = "plan-fhir"\n'
        f'base_url = "{server.base_url}/fhir"\n'
        "budget_seconds = 600\n"
        f'auth = {{ client_id = "platform", key_file = "{key_file.resolve()}" }}\n'
    )
    return sources_file


def print_destination(destination: Instance, exchanges: list[dict[str, Any]]) -> None:
    """How each exchange's delivery ended, and what arrived at the destination per type,
    as the destination itself counts it."""
    import httpx

    for exchange in exchanges:
        for delivery in exchange.get("delivery") or []:
            written = sum(delivery["written"].values())
            reason = f" ({delivery['reason_code']})" if delivery.get("reason_code") else ""
            out.print(
                f"  delivery of {exchange['id'][:8]}: {delivery['state']}{reason}, "
                f"{written} written, {delivery['unchanged']} already there"
            )
    summary = httpx.get(f"{destination.base_url}/fhir/_written", timeout=10).json()
    counts = ", ".join(f"{kind} {n}" for kind, n in summary["types"].items()) or "nothing"
    out.print(f"arrived at the plan's FHIR server ({destination.base_url}/fhir): {counts}")
