"""The sandbox population: deterministic, self-consistent, realistic enough, and streaming."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import payerbridge_tools.sandbox as sandbox
from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.npi import is_valid_npi
from payerbridge_tools.population import npi_check_digit
from payerbridge_tools.population.households import stream_households
from payerbridge_tools.population.mix import SANDBOX, HouseholdMix
from payerbridge_tools.population.network import payer_context
from payerbridge_tools.population.vocabulary import PLACES
from payerbridge_tools.sandbox import (
    build_network,
    generate_payer_population,
    sample_switchers,
    write_network,
)

AS_OF = date(2025, 6, 30)
SEED = 20250630
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MEMBER_OWNED = {
    "Patient",
    "Coverage",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Immunization",
    "Procedure",
    "AllergyIntolerance",
    "ExplanationOfBenefit",
}
NETWORK = build_network(3)
PAYER = NETWORK.payers[0]


@pytest.fixture(scope="module", autouse=True)
def _no_cycle_collector() -> Iterator[None]:
    """Fixtures hold ~70k resources (no cycles); the collector would rescan them on every pass."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


def population(members: int, seed: int = SEED, payer_index: int = 0) -> list[dict[str, Any]]:
    payer = NETWORK.payers[payer_index]
    return list(generate_payer_population(NETWORK, payer, members, seed, AS_OF))


@pytest.fixture(scope="module")
def large() -> list[dict[str, Any]]:
    return population(2000)


@pytest.fixture(scope="module")
def small() -> list[dict[str, Any]]:
    return population(300)


def references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def owner(resource: dict[str, Any]) -> str:
    """The Patient a member-owned resource belongs to."""
    if resource["resourceType"] == "Patient":
        return f"Patient/{resource['id']}"
    for key in ("subject", "patient", "beneficiary"):
        if key in resource:
            return str(resource[key]["reference"])
    raise AssertionError(f"{resource['resourceType']}/{resource['id']} names no patient")


def by_type(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [resource for resource in resources if resource["resourceType"] == kind]


def member_id(resource: dict[str, Any]) -> str:
    for identifier in resource["identifier"]:
        if identifier["type"]["coding"][0]["code"] == "MB":
            return str(identifier["value"])
    raise AssertionError("no MB identifier")


# --- network ------------------------------------------------------------------


def test_public_names_are_exported() -> None:
    assert sorted(sandbox.__all__) == sorted(
        [
            "Network",
            "NetworkFiles",
            "PayerFile",
            "PayerProfile",
            "build_network",
            "generate_payer_population",
            "sample_switchers",
            "write_network",
        ]
    )
    for name in sandbox.__all__:
        assert hasattr(sandbox, name)


def test_population_module_keeps_the_names_it_had_before_the_split() -> None:
    from payerbridge_tools import population as module

    assert sorted(module.__all__) == [
        "HouseholdMix",
        "Network",
        "PayerProfile",
        "Resource",
        "build_network",
        "generate_payer_population",
        "sample_switchers",
    ]
    older = ["MAX_HOUSEHOLD", "NPI_SYSTEM", "PLATFORM_SLUG", "PRIOR_AUTH_PROFILE", "Place"]
    for name in [*module.__all__, *older, "derive_seed", "npi_check_digit"]:
        assert hasattr(module, name)


def test_network_names_payers_in_order_with_valid_unique_npis() -> None:
    network = build_network(30)
    slugs = [payer.slug for payer in network.payers]
    assert slugs[:3] == ["payer-a", "payer-b", "payer-c"]
    assert slugs[26] == "payer-aa"
    assert network.platform.slug == "platform"
    everyone = [*network.payers, network.platform]
    npis = [payer.npi for payer in everyone]
    assert all(len(npi) == 10 and is_valid_npi(npi) for npi in npis)
    assert len(set(npis)) == len(npis)
    prefixes = [payer.member_id_prefix for payer in everyone]
    assert len(set(prefixes)) == len(prefixes)
    assert build_network(30) == network


def test_npi_check_digit_matches_the_cms_example() -> None:
    assert npi_check_digit("123456789") == 3  # CMS: 1234567893


def test_build_network_refuses_an_empty_network() -> None:
    with pytest.raises(InvalidInput):
        build_network(0)


def test_every_npi_in_a_file_is_valid(small: list[dict[str, Any]]) -> None:
    npis = [
        identifier["value"]
        for resource in small
        if resource["resourceType"] in ("Organization", "Practitioner")
        for identifier in resource["identifier"]
        if identifier["system"] == "http://hl7.org/fhir/sid/us-npi"
    ]
    assert len(npis) >= 10
    assert all(is_valid_npi(npi) for npi in npis)


# --- determinism ----------------------------------------------------------------


def test_same_seed_gives_identical_bytes(small: list[dict[str, Any]]) -> None:
    again = population(300)
    assert [orjson.dumps(r) for r in again] == [orjson.dumps(r) for r in small]


def test_another_seed_or_payer_gives_other_people(small: list[dict[str, Any]]) -> None:
    def names(resources: list[dict[str, Any]]) -> list[object]:
        return [p["name"] for p in by_type(resources, "Patient")[:20]]

    assert names(population(300, seed=SEED + 1)) != names(small)
    assert names(population(300, payer_index=1)) != names(small)


# --- structure ------------------------------------------------------------------


def test_ids_are_unique_and_valid_fhir_ids(large: list[dict[str, Any]]) -> None:
    keys = [f"{r['resourceType']}/{r['id']}" for r in large]
    assert len(set(keys)) == len(keys)
    assert len({r["id"] for r in large}) == len(large)
    assert all(ID_PATTERN.match(r["id"]) for r in large)


def test_every_reference_points_to_an_earlier_resource(large: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for resource in large:
        key = f"{resource['resourceType']}/{resource['id']}"
        for reference in references(resource):
            target_seen = reference in seen or (
                resource["resourceType"] == "Provenance" and reference == key
            )
            assert target_seen, f"{key} -> {reference}"
        seen.add(key)


def test_directory_comes_first_and_households_are_ordered(small: list[dict[str, Any]]) -> None:
    kinds = [r["resourceType"] for r in small]
    first_patient = kinds.index("Patient")
    assert set(kinds[:first_patient]) == {"Organization", "Practitioner"}
    assert "Organization" not in kinds[first_patient:]
    payer = small[0]
    assert payer["identifier"][0]["value"] == PAYER.npi
    assert payer["type"][0]["coding"][0]["code"] == "pay"


def test_each_member_has_patient_coverage_and_one_provenance_covering_all(
    large: list[dict[str, Any]],
) -> None:
    owned: dict[str, set[str]] = defaultdict(set)
    provenance: dict[str, set[str]] = {}
    for resource in large:
        kind = resource["resourceType"]
        if kind in MEMBER_OWNED:
            owned[owner(resource)].add(f"{kind}/{resource['id']}")
        elif kind == "Provenance":
            targets = {target["reference"] for target in resource["target"]}
            patient = resource["target"][0]["reference"]
            assert patient not in provenance
            provenance[patient] = targets
            agents = [agent["type"]["coding"][0]["code"] for agent in resource["agent"]]
            assert agents == ["author", "transmitter"]
    assert len(by_type(large, "Patient")) == 2000
    assert len(by_type(large, "Coverage")) == 2000
    assert set(provenance) == set(owned)
    for patient, resources in owned.items():
        assert provenance[patient] == resources


def test_resource_types_and_volume_look_like_a_claims_history(large: list[dict[str, Any]]) -> None:
    counts = Counter(r["resourceType"] for r in large)
    assert MEMBER_OWNED | {"Organization", "Practitioner", "Provenance"} <= set(counts)
    assert 10 <= len(large) / 2000 <= 40
    eobs = by_type(large, "ExplanationOfBenefit")
    claims = [eob for eob in eobs if eob["use"] == "claim"]
    prior_auths = [eob for eob in eobs if eob["use"] == "preauthorization"]
    assert claims and prior_auths
    assert all(
        eob["meta"]["profile"]
        == ["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"]
        for eob in prior_auths
    )
    assert all(eob["insurance"][0]["coverage"]["reference"].startswith("Coverage/") for eob in eobs)


def test_about_three_percent_of_members_have_labelled_sensitive_care(
    large: list[dict[str, Any]],
) -> None:
    sensitive_codes = {"F10.20", "F11.20", "B20", "F32.9", "Z30.011"}
    patients = set()
    for condition in by_type(large, "Condition"):
        if condition["code"]["coding"][0]["code"] in sensitive_codes:
            labels = {label["code"] for label in condition["meta"]["security"]}
            assert "R" in labels and labels & {"ETH", "HIV", "PSY", "SEX"}
            patients.add(owner(condition))
    assert 0.01 <= len(patients) / 2000 <= 0.06


def test_all_dates_are_on_or_before_as_of_except_planned_services(
    small: list[dict[str, Any]],
) -> None:
    for resource in small:
        for key in ("birthDate", "onsetDateTime", "authoredOn", "occurrenceDateTime", "created"):
            if key in resource:
                assert resource[key][:10] <= AS_OF.isoformat(), (resource["id"], key)


# --- members and households -------------------------------------------------------


def test_member_ids_are_unique_and_shared_by_patient_and_coverage(
    large: list[dict[str, Any]],
) -> None:
    patients = {f"Patient/{p['id']}": member_id(p) for p in by_type(large, "Patient")}
    assert len(set(patients.values())) == len(patients)
    assert all(re.fullmatch(rf"{PAYER.member_id_prefix}\d{{9}}", mb) for mb in patients.values())
    for coverage in by_type(large, "Coverage"):
        assert member_id(coverage) == patients[coverage["beneficiary"]["reference"]]
        assert coverage["payor"][0]["identifier"]["value"] == PAYER.npi


def test_households_share_subscriber_id_address_and_plan(large: list[dict[str, Any]]) -> None:
    patients = {f"Patient/{p['id']}": p for p in by_type(large, "Patient")}
    households: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for coverage in by_type(large, "Coverage"):
        households[coverage["subscriber"]["reference"]].append(coverage)
    assert len(households) < 2000  # most members share a policy with someone
    for subscriber, coverages in households.items():
        assert len({c["subscriberId"] for c in coverages}) == 1
        assert len({orjson.dumps(c["class"]) for c in coverages}) == 1
        addresses = {
            orjson.dumps(patients[c["beneficiary"]["reference"]]["address"]) for c in coverages
        }
        assert len(addresses) == 1
        relationships = [c["relationship"]["coding"][0]["code"] for c in coverages]
        assert relationships[0] == "self"
        assert coverages[0]["beneficiary"]["reference"] == subscriber
        assert coverages[0]["subscriberId"] == member_id(coverages[0])
        assert set(relationships[1:]) <= {"spouse", "child"}
        assert relationships.count("spouse") <= 1


def test_population_has_twins_and_tricky_names(large: list[dict[str, Any]]) -> None:
    patients = {f"Patient/{p['id']}": p for p in by_type(large, "Patient")}
    children: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for coverage in by_type(large, "Coverage"):
        if coverage["relationship"]["coding"][0]["code"] == "child":
            child = patients[coverage["beneficiary"]["reference"]]
            children[(coverage["subscriberId"], child["birthDate"])].append(child)
    twins = [pair for pair in children.values() if len(pair) >= 2]
    assert twins
    for pair in twins:
        assert len({child["name"][0]["family"] for child in pair}) == 1
        assert len({child["name"][0]["given"][0] for child in pair}) == len(pair)
    families = {p["name"][0]["family"] for p in patients.values()}
    assert any("'" in family for family in families)
    assert any("-" in family for family in families)
    assert any(not family.isascii() for family in families)
    ages = [(AS_OF - date.fromisoformat(p["birthDate"])).days / 365.25 for p in patients.values()]
    assert min(ages) < 2 and max(ages) > 70


def test_generation_streams() -> None:
    # A million members' stream yields its first resources without building the rest
    # (its speed is `payerbridge bench import`'s to measure, not a test's).
    stream = generate_payer_population(NETWORK, PAYER, 1_000_000, SEED, AS_OF)
    first = list(itertools.islice(stream, 20_000))
    assert len(first) == 20_000


def test_bad_arguments_are_refused() -> None:
    stranger = build_network(5).payers[4]
    with pytest.raises(InvalidInput):
        generate_payer_population(NETWORK, stranger, 10, SEED, AS_OF)
    with pytest.raises(InvalidInput):
        generate_payer_population(NETWORK, NETWORK.platform, 10, SEED, AS_OF)
    with pytest.raises(InvalidInput):
        sample_switchers(NETWORK, PAYER, 3, SEED, AS_OF, count=4)


# --- switchers ----------------------------------------------------------------------


def demographics(patient: dict[str, Any]) -> dict[str, Any]:
    address = patient["address"][0]
    return {
        "given": patient["name"][0]["given"],
        "family": patient["name"][0]["family"],
        "birth_date": patient["birthDate"],
        "gender": patient["gender"],
        "address": {
            "line": address["line"],
            "city": address["city"],
            "state": address["state"],
            "postal_code": address["postalCode"],
        },
        "phone": patient["telecom"][0]["value"],
    }


@pytest.mark.parametrize(("members", "count"), [(2000, 10), (7, 7), (300, 5)])
def test_switchers_agree_with_the_population(
    members: int, count: int, large: list[dict[str, Any]], small: list[dict[str, Any]]
) -> None:
    resources = {2000: large, 300: small}.get(members) or population(members)
    patients = {p["id"]: p for p in by_type(resources, "Patient")}
    coverages = {c["beneficiary"]["reference"]: c for c in by_type(resources, "Coverage")}
    switchers: list[dict[str, Any]] = sample_switchers(NETWORK, PAYER, members, SEED, AS_OF, count)
    assert switchers == sample_switchers(NETWORK, PAYER, members, SEED, AS_OF, count)
    assert len(switchers) == count
    assert len({s["old_patient_id"] for s in switchers}) == count
    relationships = set()
    for switcher in switchers:
        request = switcher["request"]
        patient = patients[switcher["old_patient_id"]]
        coverage = coverages[f"Patient/{patient['id']}"]
        assert switcher["old_payer"] == request["old_payer"] == PAYER.slug
        assert request["member"] == demographics(patient)
        old = request["old_coverage"]
        assert old["member_id"] == member_id(patient) == member_id(coverage)
        assert old["subscriber_id"] == coverage["subscriberId"]
        assert old["relationship"] == coverage["relationship"]["coding"][0]["code"]
        relationships.add(old["relationship"])
        new = request["new_coverage"]
        assert new["relationship"] == old["relationship"]
        assert new["member_id"].startswith(NETWORK.platform.member_id_prefix)
        assert (new["member_id"] == new["subscriber_id"]) == (old["relationship"] == "self")
        assert date.fromisoformat(new["start"]) > AS_OF
        consent = request["consent"]
        assert consent["policy"] in ("regular", "sensitive")
        assert consent["start"] == AS_OF.isoformat()
        assert consent["end"] == (AS_OF + timedelta(days=90)).isoformat()
        assert consent["source_reference"].startswith("DocumentReference/optin-")
    assert "self" in relationships and relationships - {"self"}


# --- files --------------------------------------------------------------------------


def test_write_network_is_byte_identical_and_complete(tmp_path: Path) -> None:
    calls: list[int] = []
    first = write_network(tmp_path / "one", 2, 120, SEED, AS_OF, switchers=3, progress=calls.append)
    second = write_network(tmp_path / "two", 2, 120, SEED, AS_OF, switchers=3)
    for left, right in zip(
        [first.network, first.switchers, *(p.path for p in first.payers)],
        [second.network, second.switchers, *(p.path for p in second.payers)],
        strict=True,
    ):
        assert left.read_bytes() == right.read_bytes()
    manifest = orjson.loads(first.network.read_bytes())
    assert manifest["seed"] == SEED and manifest["as_of"] == AS_OF.isoformat()
    assert manifest["members_per_payer"] == 120
    assert manifest["platform"]["slug"] == "platform"
    assert [p["file"] for p in manifest["payers"]] == ["payer-a.ndjson", "payer-b.ndjson"]
    for payer_file in first.payers:
        raw = payer_file.path.read_bytes()
        assert raw.endswith(b"\n")
        lines = raw.split(b"\n")[:-1]
        assert len(lines) == payer_file.resources
        assert all(orjson.loads(line)["resourceType"] for line in lines)
    assert len(orjson.loads(first.switchers.read_bytes())) == 6
    assert calls == sorted(calls) and calls[-1] == first.resources
    assert all(later - earlier >= 1000 for earlier, later in itertools.pairwise(calls[:-1]))
    assert not list(tmp_path.glob("**/*.tmp"))


# --- the mix --------------------------------------------------------------------------


def test_a_harder_mix_gives_twins_juniors_any_exchange_and_more_zips() -> None:
    mix = HouseholdMix(twin_share=0.08, junior_share=0.5, has_fictional_phones=False)
    mix = dataclasses.replace(mix, zips_per_place=3)
    ctx = payer_context(NETWORK, PAYER, SEED, AS_OF, mix=mix)
    households = list(stream_households(ctx, 3000))
    twins = juniors = 0
    for household in households:
        members = household.members
        children = [m for m in members if m.relationship == "child"]
        for a, b in itertools.combinations(children, 2):
            if a.birth_date == b.birth_date:
                twins += 1
                roots = [
                    set(standard_record(Demographics(given=[m.given[0]])).first_name_roots)
                    for m in (a, b)
                ]
                assert not roots[0] & roots[1]
        for son in (m for m in children if m.suffix == "Jr"):
            juniors += 1
            assert members[0].suffix == "Sr" and son.given == members[0].given
    assert twins > 40 and juniors > 20
    phones = [m.phone for h in households for m in h.members]
    assert sum("-555-" in phone for phone in phones) < len(phones) / 50
    real = {place.postal_code for place in PLACES}
    zips = {h.postal_code for h in households}
    assert real < zips and len(zips) > 2 * len(real)
    sandbox = list(stream_households(payer_context(NETWORK, PAYER, SEED, AS_OF), 3000))
    assert HouseholdMix() == SANDBOX
    assert all("-555-" in m.phone for h in sandbox for m in h.members)
    assert {h.postal_code for h in sandbox} <= real
    assert not any(m.suffix for h in sandbox for m in h.members)
