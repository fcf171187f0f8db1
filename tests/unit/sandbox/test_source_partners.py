"""The X12/CSV partner's files: deterministic by seed, read by the product's readers
(pyx12 validating the X12) without a single problem, and the members in them the
population's members, so that the demo's switchers from that partner match there."""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path

import pytest

from payerbridge.backends.mapping import MappingLibrary, MappingRef
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.readers import read_file
from payerbridge.backends.sources import load_sources
from payerbridge_tools.population import build_network, sample_switchers
from payerbridge_tools.sandbox.source_partners import (
    REPLICATED_SOURCES,
    fhir_server_sources,
    write_x12_partner,
)

AS_OF = date(2025, 6, 1)
NETWORK = build_network(5)
PAYER = NETWORK.payers[3]


def ascii_upper(text: str) -> str:
    """A name as X12 carries it: without its accents, upper case."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("x12-partner")
    write_x12_partner(out, NETWORK, PAYER, 24, 7, AS_OF)
    return out


def test_the_same_seed_writes_the_same_bytes(written: Path, tmp_path: Path) -> None:
    again = write_x12_partner(tmp_path, NETWORK, PAYER, 24, 7, AS_OF)
    for _source, path in again.files:
        assert path.read_bytes() == (written / path.name).read_bytes(), path.name


def test_every_file_reads_without_a_problem(written: Path) -> None:
    library = MappingLibrary()
    for _source, mapping, name, _what in REPLICATED_SOURCES:
        ref = MappingRef.parse(mapping)
        if library.has(ref):
            reader, options = library.get(ref).input, library.get(ref).input_options
        else:  # the 834 mapping, before it ships: the reader alone
            reader, options = "x12", {"kinds": ["834"]}
        items = list(read_file(reader, written / name, options))
        problems = [str(i) for i in items if isinstance(i, RecordProblem)]
        assert problems == [], name
        assert items, name


def test_the_834_holds_every_member_with_the_switchers_demographics(written: Path) -> None:
    members = [
        item.data["2000"][0]
        for item in read_file("x12", written / "enrollment.834", {"kinds": ["834"]})
        if isinstance(item, SourceRecord)
    ]
    assert len(members) == 24
    by_id = {m["2100A"][0]["NM1"][0]["NM109"]: m for m in members}
    for switcher in sample_switchers(NETWORK, PAYER, 24, 7, AS_OF, 4):
        request = switcher["request"]
        member = by_id[request["old_coverage"]["member_id"]]
        name = member["2100A"][0]["NM1"][0]
        assert name["NM103"] == ascii_upper(request["member"]["family"])
        assert member["2100A"][0]["DMG"][0]["DMG02"] == request["member"]["birth_date"].replace(
            "-", ""
        )
        subscriber = [r["REF02"] for r in member["REF"] if r["REF01"] == "0F"]
        assert subscriber == [request["old_coverage"]["subscriber_id"]]


def test_the_sources_files_name_shipped_mappings(written: Path, tmp_path: Path) -> None:
    library = MappingLibrary()
    replicated = (written / "sources.toml").read_text()
    for _source, mapping, _name, _what in REPLICATED_SOURCES:
        assert f'mapping = "{mapping}"' in replicated
    if all(library.has(MappingRef.parse(m)) for _, m, _, _ in REPLICATED_SOURCES):
        assert {s.id for s in load_sources(written / "sources.toml")} == {
            "enrollment",
            "claims",
            "conditions",
            "labs",
        }
    live = tmp_path / "sources.toml"
    live.write_text(
        fhir_server_sources("http://127.0.0.1:9/fhir", "partner", tmp_path / "key.json")
    )
    (spec,) = load_sources(live).live()
    assert spec.auth is not None and spec.auth.token_url == "http://127.0.0.1:9/auth/token"
    assert "Patient" not in spec.types and "Observation" in spec.types


def test_an_837i_with_several_diagnoses_is_accepted_and_maps_its_attending(
    tmp_path: Path,
) -> None:
    """The generator once wrote an 837I claim's other diagnoses in its principal diagnosis
    HI (HI02 on, which X223 does not use): pyx12 refused those claims (9 of 155 at 1,000
    members). Seed 23's 24 members hold such a claim (three diagnoses): every claim is
    accepted, its other diagnoses in an HI of their own, and mapped with its attending."""
    written = write_x12_partner(tmp_path, NETWORK, PAYER, 24, 23, AS_OF)
    mapping = MappingLibrary().get(MappingRef.parse("x12-837-eob@1.1.0"))
    items = list(read_file("x12", tmp_path / "institutional.837", mapping.input_options))
    assert [str(i) for i in items if isinstance(i, RecordProblem)] == []
    claims = [i.data["2000A"][0]["2000B"][0]["2300"][0] for i in items]
    assert len(claims) == 7 and written.claims > len(claims)
    several = [c for c in claims if len(c["HI"]) > 1]
    assert several, "the population no longer holds an 837I with several diagnoses"
    for claim in several:
        assert [h["HI01"][0] for h in claim["HI"]] == ["ABK", "ABF"]
        assert "HI02" not in claim["HI"][0]
    for item in items:
        assert isinstance(item, SourceRecord)
        (eob,) = mapping.apply(item.data, source_id="claims", namespace="plan")
        roles = [m["role"]["coding"][0]["code"] for m in eob.get("careTeam", [])]
        attending = item.data["2000A"][0]["2000B"][0]["2300"][0].get("2310A")
        assert roles == (["attending"] if attending else [])
