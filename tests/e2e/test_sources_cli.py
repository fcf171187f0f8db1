"""A replicated source's bad files through ``payerbridge sources`` and ``payerbridge
mappings``, each command its own process on the real database: every problem named
with its file and line or segment, the rest of the file kept, nothing half-written, and
a broken mapping or sources file refused at once with where it is broken."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS
from tests.servers import run_cli

X12 = BUILT_IN_MAPPINGS / "x12-837-eob" / "1.0.0" / "examples" / "professional.837"
CSV_HEADER = "member_id,row_id,problem_code,onset_date,resolved_date,recorded_date\n"


@pytest.fixture
def plan(tmp_path: Path, database_env: Callable[[], dict[str, str]]):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "sources.toml").write_text(
        'mapping_dirs = ["mappings"]\n'
        '[[source]]\nid = "claims"\nmode = "replicated"\nmapping = "x12-837-eob@1.0.0"\n'
        '[[source]]\nid = "clinical"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
    )
    (data / "mappings").mkdir()
    return data, database_env()


def ingest(data: Path, env: dict[str, str], source: str, path: Path) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    result = run_cli(
        ["sources", "ingest", source, str(path), "--data-dir", str(data), "--json"], env=env
    )
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, [orjson.loads(line) for line in result.stdout.splitlines()]


def test_a_csv_with_bad_rows_keeps_the_rest_and_names_each_line(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, env = plan
    extract = tmp_path / "conditions.csv"
    extract.write_text(
        CSV_HEADER
        + "M1,R1,HTN,20200101,,\n"  # kept
        + "M1,R2,NOPE,20200101,,\n"  # an unknown local code
        + "M1,R3,DM2,2020-02-30,,\n"  # a date that is no date
        + "M1,R4,DM2\n"  # too few fields
    )
    code, (report,) = ingest(data, env, "clinical", extract)
    assert code == 3  # problems: a script sees them
    assert report["resources"] == {"Condition": 1, "Provenance": 1}
    problems = {p["location"]["line"]: p["text"] for p in report["problems"]}
    assert "'NOPE'" in problems[3] and "local-problems" in problems[3]
    assert problems[4].startswith("onset_date is not a date")
    assert "fields" in problems[5]
    assert "2020-02-30" not in orjson.dumps(report).decode()  # never a value


def test_the_files_a_source_was_given_and_an_unknown_source_named(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, env = plan
    extract = tmp_path / "conditions.csv"
    extract.write_text(CSV_HEADER + "M1,R1,HTN,20200101,,\n")
    ingest(data, env, "clinical", extract)
    listed = run_cli(["sources", "files", "clinical", "--data-dir", str(data)], env=env)
    (row,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert row["name"] == "conditions.csv" and row["mapping"] == "csv-conditions@1.0.0"
    unknown = run_cli(["sources", "files", "labs", "--data-dir", str(data)], env=env)
    assert unknown.returncode != 0 and "no source 'labs'" in unknown.stderr


def test_a_csv_without_a_column_is_refused_whole_naming_it(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, env = plan
    extract = tmp_path / "conditions.csv"
    extract.write_text("member_id,row_id,problem_code\nM1,R1,HTN\n")
    _, (report,) = ingest(data, env, "clinical", extract)
    assert report["records"] == 0 and report["resources"] == {}
    (problem,) = report["problems"]
    assert problem["location"]["line"] == 1 and "onset_date" in problem["text"]


def test_a_broken_x12_envelope_and_segment_are_named_by_position(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, env = plan
    good = X12.read_text()
    _, (report,) = ingest(data, env, "claims", X12)
    assert report["resources"]["ExplanationOfBenefit"] >= 1 and not report["problems"]
    miscounted = tmp_path / "miscounted.837"
    miscounted.write_text(good.replace("SE*", "SE*9", 1))  # the transaction set's count is wrong
    code, (warned,) = ingest(data, env, "claims", miscounted)
    assert code == 0 and warned["records_mapped"] == 1 and not warned["problems"]
    assert warned["warnings"] == {"count": 1}  # said, and the claim is judged and mapped
    (warning,) = warned["warning_examples"]
    assert warning["location"]["segment_id"] == "SE" and warning["severity"] == "warning"
    broken = tmp_path / "broken.837"
    # No SE: the claims cannot be delimited, and the group is refused.
    broken.write_text(re.sub(r"SE\*[^~]*~\n?", "", good, count=1))
    _, (refused,) = ingest(data, env, "claims", broken)
    assert refused["resources"] == {}
    (problem,) = refused["problems"]
    assert problem["location"]["segment_id"] == "GE" and "no SE" in problem["text"]


def test_a_broken_mapping_stops_the_command_naming_the_file_and_line(plan) -> None:  # type: ignore[no-untyped-def]
    data, env = plan
    mine = data / "mappings" / "csv-conditions" / "2.0.0"
    shutil.copytree(BUILT_IN_MAPPINGS / "csv-conditions" / "1.0.0", mine)
    (mine / "mapping.toml").write_text(
        (mine / "mapping.toml").read_text().replace('"1.0.0"', '"2.0.0"')
    )
    (mine / "transform.jsonata").write_text('{\n  "resourceType": "Condition",\n  "id": (\n}\n')
    sources = data / "sources.toml"
    sources.write_text(sources.read_text().replace("csv-conditions@1.0.0", "csv-conditions@2.0.0"))
    result = run_cli(["sources", "check", "--data-dir", str(data)], env=env)
    assert result.returncode == 2
    assert "source 'clinical'" in result.stderr and "transform.jsonata line" in result.stderr
    tested = run_cli(["mappings", "test", "csv-conditions@2.0.0", "--data-dir", str(data)], env=env)
    assert tested.returncode != 0


def test_sources_check_lists_the_destinations_and_names_every_bad_one(tmp_path: Path) -> None:
    """A destination (ADR 0053) is checked as start-up checks it: its key read."""
    from tests.servers import new_signing_key

    key = new_signing_key()
    good = tmp_path / "plan.jwk"
    good.write_bytes(orjson.dumps({**key.as_dict(private=True), "kid": key.kid}))
    public = tmp_path / "public.jwk"
    public.write_bytes(orjson.dumps({**key.as_dict(private=False), "d": "x", "kid": key.kid}))
    sources = tmp_path / "sources.toml"
    entry = '[[destination]]\nid = "{id}"\nbase_url = "https://fhir.plan.example/r4"\n'
    entry += 'auth = {{ client_id = "us", key_file = "{key}" }}\n'
    sources.write_text(entry.format(id="plan-fhir", key=good))
    listed = run_cli(
        ["sources", "check", "--data-dir", str(tmp_path), "--sources-file", str(sources)]
    )
    assert listed.returncode == 0, listed.stderr
    assert "plan-fhir" in listed.stdout and "system/*.write" in listed.stdout
    sources.write_text(
        entry.format(id="plan-fhir", key=good) + entry.format(id="other", key=public)
        + '[[destination]]\nid = "third"\nbase_url = "mailto:x"\n'
    )  # fmt: skip
    refused = run_cli(
        ["sources", "check", "--data-dir", str(tmp_path), "--sources-file", str(sources)]
    )
    assert refused.returncode == 2
    assert "destination 'third': base_url" in refused.stderr
    sources.write_text(
        entry.format(id="plan-fhir", key=good) + entry.format(id="other", key=public)
    )
    unreadable = run_cli(
        ["sources", "check", "--data-dir", str(tmp_path), "--sources-file", str(sources)]
    )
    assert unreadable.returncode == 2 and "destination 'other'" in unreadable.stderr


def _claims(count: int) -> str:
    """An 837P of ``count`` claims from the sandbox's generator (synthetic members)."""
    from datetime import date

    from payerbridge_tools.sandbox.x12_files import Claim, Enrollee, Interchange, Provider
    from payerbridge_tools.sandbox.x12_files import claims_837 as sandbox_837

    providers = [Provider(f"149775854{n}", f"CLINIC {n}", f"01020304{n}") for n in range(4)]
    claims = []
    for n in range(count):
        member = n // 4
        enrollee = Enrollee(
            member_id=f"M{member:07d}", subscriber_id=f"M{member:07d}", relationship="self",
            given=("PAT",), family=f"FAMILY{member}", suffix="", gender="female",
            birth_date=date(1980, 2, 14), lines=("4 ELM ST",), city="PORTLAND", state="ME",
            postal_code="04101", phone="5555550100", phone_use="home", group="GRP100",
            plan="PLAN", coverage_start=date(2024, 1, 1), is_medicare=False,
            coverage_level="IND",
        )  # fmt: skip
        claims.append(
            Claim(
                claim_id=f"C{n:07d}",
                enrollee=enrollee,
                billing=providers[member % 4],
                attending=None,
                institutional=False,
                place_of_service="11",
                serviced=date(2024, 1, 10),
                diagnoses=("J02.0",),
                services=("99213",),
            )  # fmt: skip
        )
    envelope = Interchange("SANDBOXCH", "SBXPLAN", date(2024, 1, 15), 7)
    payer = ("SANDBOX PLAN", "SBXPLAN")
    return sandbox_837(envelope, ("CLEARINGHOUSE", "SBXCH01"), payer, claims, institutional=False)


def test_one_bad_claim_in_a_thousand_is_quarantined_the_rest_mapped(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """ADR 0056: a defect that changes one claim's meaning (a service date that is no
    date) quarantines that claim, with its segment, and the 999 others are mapped."""
    data, env = plan
    text = _claims(1000)
    at = text.index("CLM*C0000500*")
    text = text[:at] + text[at:].replace("DTP*472*D8*20240110", "DTP*472*D8*20241310", 1)
    path = tmp_path / "claims.837"
    path.write_text(text)
    # Read on a second process, as a large file is (ADR 0055): the same report.
    code, (report,) = ingest(
        data, {**env, "PAYERBRIDGE_INGEST_PARALLEL_BYTES": "1"}, "claims", path
    )
    assert code == 3  # a record refused: a script sees it
    assert report["records"] == 1000 and report["records_mapped"] == 999
    assert report["records_quarantined"] == 1 and report["resources"]["ExplanationOfBenefit"] == 999
    (problem,) = report["problems"]
    assert problem["key"].endswith("|C0000500") and problem["location"]["segment_id"] == "DTP"
    assert "20241310" not in orjson.dumps(report).decode()  # never a value
    held = run_cli(["quarantine", "list", "--data-dir", str(data), "--json"], env=env)
    assert held.returncode == 0, held.stderr
    (row,) = orjson.loads(held.stdout)["items"]
    assert row["resource_type"] == "X12Record" and row["resource_id"] is None
    (issue,) = row["issues"]
    assert issue["rule"] == "x12-record" and "DTP03" in issue["text"]
    # Mapped again from its sealed pieces (issue 71), fed a piece at a time to the second
    # process: the same resources, nothing changed.
    again = run_cli(
        ["sources", "remap", "claims", "--data-dir", str(data), "--json"],
        env={**env, "PAYERBRIDGE_INGEST_PARALLEL_BYTES": "1"},
    )
    assert again.returncode == 0, again.stderr
    (remapped,) = [orjson.loads(line) for line in again.stdout.splitlines()]
    assert remapped["resources"] == report["resources"]
    changed = {change: count for change, count in remapped["changes"].items() if count}
    assert set(changed) == {"unchanged"} and changed["unchanged"] >= 999
