"""Old payers that answer from a plan's own systems, as real processes (issue 52): one
whose history comes only from X12 and CSV files (ingested with ``payerbridge sources
ingest``, its identity index fed from its 834), one whose clinical history is asked of
the plan's FHIR server (the quirky server, a process of its own) at request time; a new
payer exchanging a member with each. SQLite or PostgreSQL (PAYERBRIDGE_TEST_BACKEND)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from payerbridge.backends.mapping import MAPPING_TAG_SYSTEM
from payerbridge.fhir.codes import PROVENANCE_SOURCE_FORMAT
from payerbridge.fhir.completeness import COMPLETENESS_SYSTEM, SOURCE_EXTENSION
from payerbridge_tools.population import build_network
from payerbridge_tools.sandbox.source_partners import (
    LIVE_SOURCE,
    fhir_server_sources,
    fhir_server_switcher,
    source_switcher,
    write_x12_partner,
)
from tests.e2e.test_exchange import stored_everything, submit, wait_terminal
from tests.processes import ForkedProcess
from tests.servers import (
    REQUESTER_SCOPES,
    ServerProcess,
    free_port,
    new_signing_key,
    probe,
    public_jwk,
)

MEMBERS, SEED = 18, 12
AS_OF = date.today() - timedelta(days=1)
# The FHIR server's population on a fixed date: with seed 12, some of its members have
# only records that meet their profiles (the quirks are drawn per resource).
FHIR_AS_OF = date(2025, 1, 1)
NETWORK = build_network(5)
X12_PAYER, FHIR_PAYER = NETWORK.payers[3], NETWORK.payers[4]
PLATFORM = NETWORK.platform
BUDGET = 3.0
BROKEN: dict[str, str] = {}  # the claim the X12 partner's fixture broke, by its id


def _org(payer: Any) -> dict[str, str]:
    return {"PAYERBRIDGE_ORG_NAME": payer.name, "PAYERBRIDGE_ORG_NPI": payer.npi}


@pytest.fixture(scope="module")
def new_payer(module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return module_server("new", env=_org(PLATFORM))


def _partner(new: ServerProcess, old: ServerProcess, payer: Any) -> None:
    """The old payer trusts the new one; the new one adds it as its partner."""
    old.trust(new, "platform", npi=PLATFORM.npi)
    old.authorize("platform-reader", npi=PLATFORM.npi, scope=REQUESTER_SCOPES)
    with new.client() as client:
        response = client.post(
            "/partners",
            json={
                "id": payer.slug,
                "name": payer.name,
                "npi": payer.npi,
                "base_url": old.fhir_base,
                "client_id": "platform",
            },
        )
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def x12_partner(
    module_server: Callable[..., ServerProcess],
    new_payer: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    """The X12/CSV partner: its files ingested by ``payerbridge sources ingest``, no
    FHIR imported."""
    files = tmp_path_factory.mktemp("x12-files")
    written = write_x12_partner(files, NETWORK, X12_PAYER, MEMBERS, SEED, AS_OF)
    old = module_server(
        "x12", env={**_org(X12_PAYER), "PAYERBRIDGE_SOURCES_FILE": str(written.sources_file)}
    )
    broken = BROKEN["claim"] = _break_a_claim_of(files / "professional.837", _x12_switcher())
    for source_id, path in written.files:
        ingested = old.cli("sources", "ingest", source_id, str(path), "--json")
        assert ingested.returncode == (3 if path.name == "professional.837" else 0)
        (report,) = [orjson.loads(line) for line in ingested.stdout.splitlines()]
        if path.name != "professional.837":
            assert (report["problem_count"], report["quarantined"]) == (0, 0), report
            continue
        # ADR 0056: the one claim whose service date is no date is held, the rest mapped.
        (problem,) = report["problems"]
        assert problem["key"].endswith(f"|{broken}") and problem["location"]["segment_id"] == "DTP"
        assert report["records_quarantined"] == 1
        assert report["records_mapped"] == report["records"] - 1
    _partner(new_payer, old, X12_PAYER)
    return old


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """The plan's FHIR server (the quirky one) as a process, serving the FHIR-server
    partner's population; (its base URL, our client's private key file, client id)."""
    directory = tmp_path_factory.mktemp("fhir-source")
    key = new_signing_key()
    key_file, jwks = directory / "client.jwk", directory / "client-jwks.json"
    key_file.write_bytes(orjson.dumps({**key.as_dict(private=True), "kid": key.kid}))
    jwks.write_bytes(orjson.dumps({"keys": [public_jwk(key)]}))
    port, log = free_port(), directory / "fhir-source.log"
    # fmt: off
    process = ForkedProcess(
        ["sandbox", "fhir-source", "--port", str(port), "--members", str(MEMBERS),
         "--seed", str(SEED), "--as-of", FHIR_AS_OF.isoformat(), "--payer", FHIR_PAYER.slug,
         "--network-payers", str(len(NETWORK.payers)), "--client-id", "partner-e",
         "--jwks-file", str(jwks), "--export-retry-after", "0"],
        env={**os.environ, "COLUMNS": "1000"},
        stdout=log,
    )
    # fmt: on
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if probe(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    try:
        yield f"{base}/fhir", key_file, "partner-e"
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture(scope="module")
def fhir_partner(
    module_server: Callable[..., ServerProcess],
    new_payer: ServerProcess,
    fhir_server: tuple[str, Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    """The FHIR-server partner: its live source, its roster synced by ``payerbridge
    sources sync``."""
    base_url, key_file, client_id = fhir_server
    sources_file = tmp_path_factory.mktemp("fhir-partner") / "sources.toml"
    sources_file.write_text(
        fhir_server_sources(base_url, client_id, key_file, budget_seconds=BUDGET)
    )
    old = module_server(
        "fhirp", env={**_org(FHIR_PAYER), "PAYERBRIDGE_SOURCES_FILE": str(sources_file)}
    )
    synced = old.cli("sources", "sync", LIVE_SOURCE, "--json")
    assert synced.returncode in (0, 3), synced.stderr  # 3: a member its profile held
    assert orjson.loads(synced.stdout)["members"] >= MEMBERS - 1
    _partner(new_payer, old, FHIR_PAYER)
    return old


def _fhir_switcher() -> dict[str, Any]:
    """A member of the FHIR server whose records all meet their profiles, their consent
    running from yesterday (the population is of a fixed date)."""
    switcher = fhir_server_switcher(NETWORK, FHIR_PAYER, MEMBERS, SEED, FHIR_AS_OF)
    request = switcher["request"]
    consent = {
        **request["consent"],
        "start": AS_OF.isoformat(),
        "end": (AS_OF + timedelta(days=90)).isoformat(),
    }
    coverage = {**request["new_coverage"], "start": (AS_OF + timedelta(days=2)).isoformat()}
    return {**switcher, "request": {**request, "consent": consent, "new_coverage": coverage}}


def _tags_and_formats(resources: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    tags, formats = set(), set()
    for resource in resources:
        for tag in (resource.get("meta") or {}).get("tag") or []:
            if tag.get("system") == MAPPING_TAG_SYSTEM:
                tags.add(f"{tag['code']}@{tag['version']}")
        for entity in resource.get("entity") or []:
            for extension in entity.get("extension") or []:
                if extension.get("url") == PROVENANCE_SOURCE_FORMAT:
                    formats |= {c["code"] for c in extension["valueCodeableConcept"]["coding"]}
    return tags, formats


def _x12_switcher() -> dict[str, Any]:
    return source_switcher(NETWORK, X12_PAYER, MEMBERS, SEED, AS_OF)


def _break_a_claim_of(path: Path, switcher: dict[str, Any]) -> str:
    """The switcher's first professional claim given a service date that is no date (a
    defect that changes the claim's meaning); its claim id."""
    segments = [segment.strip() for segment in path.read_text().split("~")]
    member = switcher["request"]["old_coverage"]["member_id"]
    at = next(n for n, s in enumerate(segments) if s.startswith("NM1*IL") and s.endswith(member))
    claim_at = next(n for n in range(at, len(segments)) if segments[n].startswith("CLM*"))
    date_at = next(n for n in range(claim_at, len(segments)) if segments[n].startswith("DTP*472"))
    day = segments[date_at].rsplit("*", 1)[1]
    segments[date_at] = segments[date_at][: -len(day)] + day[:4] + "13" + day[6:]
    path.write_text("~\n".join(segments))
    return segments[claim_at].split("*")[1]


def test_an_exchange_with_the_x12_csv_partner_returns_mapped_carin_bb_and_us_core(
    new_payer: ServerProcess, x12_partner: ServerProcess
) -> None:
    switcher = _x12_switcher()
    with new_payer.client() as client:
        exchange = wait_terminal(client, submit(client, switcher["request"]))
    assert exchange["state"] == "completed", exchange
    assert exchange["completeness"]["complete"] is True
    # Matched at the partner, whose members only its 834 gave (no FHIR was imported).
    matched = exchange["matched_member"].removeprefix("Patient/")
    with x12_partner.client_with(
        x12_partner.register_client("reader", npi=PLATFORM.npi, scope="system/*.rs")
    ) as http:
        patient = http.get(f"/fhir/Patient/{matched}")
    if patient.status_code == 200:  # the reader's consent: the exchange's, same org
        tags, _ = _tags_and_formats([patient.json()])
        assert tags == {"x12-834-enrollment@1.1.0"}
    with x12_partner.platform() as platform:
        assert platform.members.count("source:") == platform.members.count()

    received = [
        e["resource"]
        for e in stored_everything(new_payer, exchange["imported_patient_id"])["entry"]
    ]
    types = {r["resourceType"] for r in received}
    assert {"Patient", "Coverage", "ExplanationOfBenefit", "Provenance"} <= types
    tags, formats = _tags_and_formats(received)
    assert {"x12-834-enrollment@1.1.0", "x12-837-eob@1.1.0"} <= tags
    assert {"x12837"} <= formats
    # 1.1.0's must-support (ADR 0058): the 834's coverages typed by their insurance line.
    coverages = [r for r in received if r["resourceType"] == "Coverage"]
    assert coverages and all(
        c["type"]["coding"][0]["system"] == "https://nahdo.org/sopt" for c in coverages
    )
    eobs = [r for r in received if r["resourceType"] == "ExplanationOfBenefit"]
    # The claim held in the quarantine at the old payer (ADR 0056) is not among them.
    claim_ids = {i["value"] for eob in eobs for i in eob.get("identifier", [])}
    assert claim_ids and not any(i.endswith(f"-{BROKEN['claim']}") for i in claim_ids)
    assert all(
        p.startswith("http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-")
        for eob in eobs
        for p in eob["meta"]["profile"]
    )
    clinical = [r for r in received if r["resourceType"] in ("Condition", "Observation")]
    if clinical:  # the member's extracts: conditions CSV, fixed-width labs
        assert "customtx" in formats
        assert tags & {"csv-conditions@1.0.0", "fixed-width-labs@1.0.0"}


def test_an_exchange_with_the_fhir_server_partner_completes_from_the_live_source(
    new_payer: ServerProcess, fhir_partner: ServerProcess
) -> None:
    switcher = _fhir_switcher()
    with new_payer.client() as client:
        exchange = wait_terminal(client, submit(client, switcher["request"]))
    assert exchange["state"] == "completed", exchange
    received = [
        e["resource"]
        for e in stored_everything(new_payer, exchange["imported_patient_id"])["entry"]
    ]
    tags, _formats = _tags_and_formats(received)
    assert "fhir-server-quirks@1.0.0" in tags
    # The Coverage is asked of the server at request time (the roster gave the Patient).
    coverages = [r for r in received if r["resourceType"] == "Coverage"]
    assert coverages and _tags_and_formats(coverages)[0] == {"fhir-server-quirks@1.0.0"}


def test_a_source_down_mid_request_is_named_and_asking_again_completes(
    new_payer: ServerProcess,
    fhir_partner: ServerProcess,
    fhir_server: tuple[str, Path, str],
) -> None:
    """The quirky server made slower than the budget: the old payer's $everything names
    the source and its types in a completeness OperationOutcome (answered, not hung);
    once the server is back, asking again gives no gap."""
    switcher = _fhir_switcher()
    with new_payer.client() as client:  # the member's consent, presented to the partner
        exchange = wait_terminal(client, submit(client, switcher["request"]))
    assert exchange["state"] == "completed", exchange
    member = exchange["matched_member"]
    control = fhir_server[0].removesuffix("/fhir") + "/_control"
    with fhir_partner.client_with(
        fhir_partner.register_client("reader-2", npi=PLATFORM.npi, scope="system/*.rs")
    ) as http:
        httpx.post(control, json={"mode": "slow", "delay": BUDGET * 4}, timeout=10)
        try:
            slow = http.get(f"/fhir/{member}/$everything", timeout=BUDGET * 4)
        finally:
            httpx.post(control, json={"mode": "normal"}, timeout=10)
        assert slow.status_code == 200, slow.text
        outcome = _completeness(slow.json())
        assert outcome is not None, "the answer does not say it is incomplete"
        issue = outcome["issue"][0]
        assert issue["details"]["coding"][0]["system"] == COMPLETENESS_SYSTEM
        assert {"url": SOURCE_EXTENSION, "valueString": LIVE_SOURCE} in issue["extension"]
        # The types missed may be named across several issues: one per way they were
        # missed (not read within the budget, a call that timed out), as the load decides.
        named = {e for each in outcome["issue"] for e in each.get("expression", [])}
        assert named & {"Condition", "Observation", "Encounter"}, outcome
        again = http.get(f"/fhir/{member}/$everything", timeout=30)
        assert again.status_code == 200, again.text
        assert _completeness(again.json()) is None


def _completeness(bundle: dict[str, Any]) -> dict[str, Any] | None:
    for entry in bundle.get("entry") or []:
        resource = entry["resource"]
        if resource["resourceType"] == "OperationOutcome" and any(
            (issue.get("details") or {}).get("coding", [{}])[0].get("system") == COMPLETENESS_SYSTEM
            for issue in resource.get("issue", [])
        ):
            return dict(resource)
    return None
