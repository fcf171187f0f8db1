"""The golden request suite: representative scenarios run through the old payer as a
partner meets it, each compared with its expected canonical output (``tests/golden``).

A scenario is a directory with ``scenario.toml`` and its input files: FHIR to import,
a replicated source's files (X12, CSV, fixed-width) with their mappings, or a live FHIR
server (the sandbox's quirky one, in-process) that may be down. The runner builds an old
payer in a fresh data dir, loads the inputs the product's own way, registers the
requesting payer, then asks as that payer does: ``$member-match`` in the scenario's HRex
version with the member's opt-in, then every page of ``$everything``. What it saw, with
what changes from run to run (times, random ids, page links) taken out, is the output:
the ingestion reports, the match answer, the released resources, what a source could
not give, and what the quarantine holds.

Any change to a mapping, an adapter, the profiles or the identity engine that changes an
output fails the suite until the output is recorded again, deliberately:
``payerbridge golden record`` (the diff is shown).
"""

from __future__ import annotations

import difflib
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

__all__ = ["GOLDEN_DIR", "Scenario", "diff", "everything_pages", "run", "scenarios"]

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "tests" / "golden"
OLD_PAYER = ("Golden Old Health Plan", "1245319599")
NEW_PAYER = ("Golden New Health Plan", "1234567893")
CLIENT_ID = "golden-new-payer"
BASE_URL = "https://old-payer.example"
SCOPE = "system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
# What changes from run to run, taken out of every resource and answer.
_VOLATILE_META = ("lastUpdated", "versionId")


@dataclass(frozen=True)
class Scenario:
    name: str
    directory: Path
    spec: dict[str, Any]

    @property
    def expected(self) -> Path:
        return self.directory / "expected.json"


def scenarios(root: Path = GOLDEN_DIR, names: list[str] | None = None) -> list[Scenario]:
    found = []
    for path in sorted(root.glob("*/scenario.toml")):
        if names and path.parent.name not in names:
            continue
        found.append(Scenario(path.parent.name, path.parent, tomllib.loads(path.read_text())))
    return found


def run(scenario: Scenario) -> dict[str, Any]:
    """The scenario's canonical output."""
    with (
        tempfile.TemporaryDirectory(prefix=f"golden-{scenario.name}-") as work,
        _old_payer(scenario, Path(work)) as platform,
    ):
        output: dict[str, Any] = {"scenario": scenario.name}
        output["ingest"] = _load(scenario, platform)
        live = _live(scenario, platform)
        if live is not None:
            output["roster"] = live
        output |= _ask(scenario, platform)
        output["quarantine"] = [
            {
                "source": held.source_id,
                "mapping": f"{held.mapping_id}@{held.mapping_version}",
                "resource_type": held.resource_type,
                "rules": sorted({i.rule for i in held.issues}),
                "paths": sorted({i.path for i in held.issues}),
            }
            for held in platform.quarantine.list(limit=1000)
        ]
    return output


def diff(expected: dict[str, Any] | None, actual: dict[str, Any]) -> list[str]:
    before = _lines(expected) if expected is not None else []
    return list(difflib.unified_diff(before, _lines(actual), "expected", "actual", lineterm=""))


def _lines(document: Any) -> list[str]:
    return (
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        .decode()
        .splitlines()
    )


@contextmanager
def _old_payer(scenario: Scenario, work: Path) -> Iterator[Any]:
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    sources = scenario.spec.get("source", [])
    sources_file = None
    if sources:
        lines = (
            [f'mapping_dirs = ["{scenario.directory / "mappings"}"]']
            if (scenario.directory / "mappings").is_dir()
            else []
        )
        for source in sources:
            entries = {k: v for k, v in source.items() if k != "files"}
            lines.append("[[source]]")
            lines += [f"{k} = {_toml(v)}" for k, v in entries.items()]
        sources_file = work / "sources.toml"
        sources_file.write_text("\n".join(lines) + "\n")
    settings = load_settings(
        data_dir=work / "data",
        database_url=None,
        org_name=OLD_PAYER[0],
        org_npi=OLD_PAYER[1],
        public_base_url=BASE_URL,
        sources_file=sources_file,
        # A fixed identity key: the member identifiers it derives are part of the output.
        identity_secret="golden-identity-key-not-a-secret-0123456789",
        hrex_version=scenario.spec.get("old_payer_hrex", "1.1.0"),
    )
    platform = build_platform(settings)
    try:
        yield platform
    finally:
        platform.close()


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _load(scenario: Scenario, platform: Any) -> list[dict[str, Any]]:
    from payerbridge.backends.model import FileAt
    from payerbridge.backends.replicated import IngestFile, ingest_file

    reports: list[dict[str, Any]] = []
    imports = [scenario.directory / name for name in scenario.spec.get("import", [])]
    if imports:
        for report in platform.import_member_files(imports):
            reports.append(
                {"import": report.path.name, "resources": dict(sorted(report.counts.items()))}
            )
    for source in scenario.spec.get("source", []):
        for name in source.get("files", []):
            command = IngestFile(source["id"], name, FileAt(scenario.directory / name))
            report = ingest_file(command, platform.units.sources()).to_json()
            report.pop("sha256", None)
            reports.append(report)
    return reports


def _live(scenario: Scenario, platform: Any) -> dict[str, Any] | None:
    """The live source, the sandbox's quirky FHIR server in-process, its roster read."""
    live = scenario.spec.get("live")
    if live is None:
        return None
    from payerbridge.sources import FhirServerSettings, FhirServerSource
    from payerbridge_tools.sandbox.asgi import SyncASGITransport
    from payerbridge_tools.sandbox.fhir_source import FhirSourceOptions, build_app

    options = FhirSourceOptions(
        members=int(live.get("members", 5)), seed=int(live.get("seed", 7)), as_of=date(2025, 1, 1)
    )
    app = build_app(options)
    spec = platform.live.sources.get(live["source"])
    source = FhirServerSource(
        FhirServerSettings(
            id=spec.id,
            base_url="http://fhir-source.golden/fhir",
            types=frozenset(spec.types),
            page_size=spec.page_size,
        ),
        transport=SyncASGITransport(app),
    )
    platform.live.adapters[spec.id] = source
    with platform.transactions.begin() as unit:
        report = platform.live.sync_roster(unit, spec.id)
    options.control.set({"mode": live.get("mode", "normal"), **live.get("control", {})})
    return {"source": report.source_id, "members": report.members, "problems": report.problems}


def _matched(scenario: Scenario, platform: Any) -> tuple[Any, dict[str, str], Any, str | None]:
    """The new payer's client of this old payer (in-process, without its lifespan: no
    workflows; these operations need none), its headers, the ``$member-match`` answer,
    and the matched member's Patient id (None when there is no match)."""
    import httpx

    from payerbridge.api.app import create_app
    from payerbridge_tools.sandbox.asgi import SyncASGITransport

    token = _register(platform)
    transport = SyncASGITransport(create_app(platform, run_workers=False))
    client = httpx.Client(transport=transport, base_url=BASE_URL, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    body = _member_match_request(scenario, platform)
    answer = client.post("/fhir/Patient/$member-match", content=orjson.dumps(body), headers=headers)
    if answer.status_code != 200:
        return client, headers, answer, None
    found = client.get(f"/fhir/Patient?identifier={_umb(answer.json())}", headers=headers).json()
    patient = next(
        e["resource"]["id"]
        for e in found.get("entry", [])
        if e["resource"]["resourceType"] == "Patient"
    )
    return client, headers, answer, patient


def _ask_client(scenario: Scenario, platform: Any) -> tuple[Any, dict[str, str], str]:
    """The client, its headers and the matched member (the benchmarks' start)."""
    client, headers, answer, patient = _matched(scenario, platform)
    if patient is None:
        raise RuntimeError(f"no match: $member-match answered {answer.status_code}")
    return client, headers, patient


def _ask(scenario: Scenario, platform: Any) -> dict[str, Any]:
    """``$member-match`` and ``$everything`` as the new payer asks them."""
    client, headers, answer, patient = _matched(scenario, platform)
    out: dict[str, Any] = {
        "member_match": {"status": answer.status_code, "body": _canonical(answer.json())}
    }
    if patient is None:
        return out
    umb = _umb(answer.json())
    entries: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    pages = 0
    for status, bundle in everything_pages(client, headers, patient):
        pages += 1
        if status != 200:
            out["everything"] = {"status": status, "body": _canonical(bundle)}
            return out
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] == "OperationOutcome":
                outcomes.append(_canonical(resource, keep_id=False))
            else:
                entries.append(_canonical(resource))
    entries.sort(key=lambda r: (r["resourceType"], r.get("id", ""), orjson.dumps(r)))
    out["everything"] = {"status": 200, "pages": pages, "resources": entries, "outcomes": outcomes}
    # The member identifier the match minted is new each run: named, not compared.
    minted = umb.split("|", 1)[1]
    return dict(orjson.loads(orjson.dumps(out).decode().replace(minted, "<minted-member-id>")))


def everything_pages(
    client: Any, headers: dict[str, str], patient: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each page of the member's ``$everything`` (status, Bundle), ``next`` followed;
    a page that is not 200 ends it."""
    url: str | None = f"/fhir/Patient/{patient}/$everything"
    while url is not None:
        page = client.get(url, headers=headers)
        bundle = page.json()
        yield page.status_code, bundle
        if page.status_code != 200:
            return
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        if url is not None:
            url = url.removeprefix(BASE_URL)


def _register(platform: Any) -> str:
    from joserfc.jwk import ECKey

    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client
    from payerbridge.security.tokens import public_jwk
    from payerbridge.types import ClientId

    now = datetime.now(UTC)
    key = ECKey.generate_key("P-384")
    client = smart_client(
        CLIENT_ID,
        NEW_PAYER[0],
        NEW_PAYER[1],
        SCOPE,
        ClientKeys(jwks={"keys": [{**public_jwk(key, "ES384"), "kid": "golden"}]}),
    )
    add_client(AddClient(client, "golden"), platform.units.security())
    grant = platform.tokens.issue(ClientId(CLIENT_ID), SCOPE, now=now, actor="golden")
    return str(grant.access_token)


def _member_match_request(scenario: Scenario, platform: Any) -> dict[str, Any]:
    """The Parameters the new payer sends, in the scenario's HRex version, with the
    member's opt-in as HRex Consent; the member as the scenario says, or a live
    source's member (``member_from_roster``: its place in the roster)."""
    from payerbridge.api.schemas import ExchangeCreate
    from payerbridge.consent.model import ConsentId
    from payerbridge.exchange.intake.opt_in import OptIn, opt_in_consent
    from payerbridge.fhir.member_match import build_member_match_request
    from payerbridge.routing.model import Organization, Partner
    from payerbridge.routing.profiles import PROFILES
    from payerbridge.types import ClientId, MemberId, PartnerId

    request = dict(scenario.spec["request"])
    if "member_from_roster" in request:
        request = _from_roster(platform, int(request.pop("member_from_roster")), request)
    request.setdefault(
        "new_coverage", {"member_id": "N1", "relationship": "self", "start": "2026-12-01"}
    )
    request.setdefault(
        "consent",
        {
            "policy": scenario.spec.get("consent", "regular"),
            "start": "2026-01-01",
            "end": "2099-01-01",
            "source_reference": "DocumentReference/optin-1",
        },
    )
    request["old_payer"] = "old"
    domain = ExchangeCreate.model_validate(request).to_domain()
    assert domain.consent is not None
    old = Partner(PartnerId("old"), OLD_PAYER[0], OLD_PAYER[1], f"{BASE_URL}/fhir")
    opt_in = opt_in_consent(
        OptIn(domain.consent, MemberId("N1"), old, ClientId(CLIENT_ID)),
        consent_id=ConsentId("golden-consent"),
        us=Organization(*NEW_PAYER),
        zone=ZoneInfo("UTC"),
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    hrex = scenario.spec.get("hrex")
    return build_member_match_request(
        domain,
        opt_in.resource,
        us=Organization(*NEW_PAYER, "https://new-payer.example/fhir"),
        partner=Organization(*OLD_PAYER),
        shape=PROFILES.hrex[hrex] if hrex else PROFILES.current,
    )


def _from_roster(platform: Any, index: int, request: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import select

    from payerbridge.store.members import opened_resource
    from payerbridge.store.tables import fhir_resources

    with platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.body)
            .where(fhir_resources.c.resource_type == "Patient")
            .order_by(fhir_resources.c.ref)
        ).all()
    patient = opened_resource(platform.engine, *rows[index])
    name = patient["name"][0]
    member_id = patient["identifier"][0]["value"]
    return {
        **request,
        "member": {
            "given": name.get("given", []),
            "family": name["family"],
            "birth_date": patient["birthDate"],
            "gender": patient["gender"],
        },
        "old_coverage": {
            "member_id": member_id,
            "subscriber_id": member_id,
            "relationship": "self",
        },
    }


def _umb(answer: dict[str, Any]) -> str:
    for parameter in answer.get("parameter", []):
        if parameter["name"] == "MemberIdentifier":
            identifier = parameter["valueIdentifier"]
            return f"{identifier['system']}|{identifier['value']}"
        if parameter["name"] == "MemberPatient":
            for identifier in parameter["resource"].get("identifier", []):
                return f"{identifier['system']}|{identifier['value']}"
    raise AssertionError("the $member-match answer names no member")


def _canonical(resource: Any, *, keep_id: bool = True) -> Any:
    """``resource`` without what changes from run to run."""
    if not isinstance(resource, dict):
        return resource
    copy = dict(resource)
    meta = {k: v for k, v in (copy.get("meta") or {}).items() if k not in _VOLATILE_META}
    if meta:
        copy["meta"] = meta
    else:
        copy.pop("meta", None)
    if copy.get("resourceType") == "Provenance":
        copy.pop("recorded", None)
        copy.pop("id", None)  # ours are new each answer
        copy["target"] = sorted(copy.get("target", []), key=lambda t: t.get("reference", ""))
    if copy.get("resourceType") in ("Parameters", "Bundle", "OperationOutcome") or not keep_id:
        copy.pop("id", None)
        copy.pop("timestamp", None)
    if copy.get("resourceType") == "Parameters":
        copy["parameter"] = [
            {k: _canonical(v) if k == "resource" else v for k, v in p.items()}
            for p in copy.get("parameter", [])
        ]
    return copy
