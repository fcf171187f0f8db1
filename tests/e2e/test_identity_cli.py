"""``payerbridge identity reindex | train | match`` as an operator runs them: real processes,
a real data directory, SQLite or PostgreSQL (PAYERBRIDGE_TEST_BACKEND)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from payerbridge.identity.matching.spec import DEFAULT_SPEC
from payerbridge.identity.model import ReviewQuery
from payerbridge.store.tables import identity_models
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.servers import run_cli

HOME = {"line": ["12 Oak Street"], "city": "Springfield", "state": "IL", "postalCode": "62704"}


def _member(
    pid: str,
    *,
    given: str,
    family: str,
    birth_date: str,
    gender: str,
    member_id: str,
    subscriber_id: str,
    subscriber: str,
    phone: str,
    address: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A Patient with address and phone, and its Coverage (subscriber, relationship)."""
    patient = a_patient(
        pid, given=given, family=family, birth_date=birth_date, gender=gender, member_id=member_id
    )
    patient["address"] = [{"use": "home", **(address or HOME)}]
    patient["telecom"] = [{"system": "phone", "use": "home", "value": phone}]
    coverage = a_coverage(
        f"cov-{pid}", patient=pid, member_id=member_id, subscriber_id=subscriber_id
    )
    coverage["subscriber"] = {"reference": f"Patient/{subscriber}"}
    relationship = "self" if subscriber == pid else "child"
    coverage["relationship"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                "code": relationship,
            }
        ]
    }
    return [patient, coverage]


ELSEWHERE = {"line": ["900 Lake Avenue"], "city": "Chicago", "state": "IL", "postalCode": "60601"}
MEMBERS = [
    # A parent and her child on the parent's card (same subscriber id, address, phone).
    *_member(
        "ana",
        given="Ana",
        family="Garcia",
        birth_date="1980-02-03",
        gender="female",
        member_id="GAR1000",
        subscriber_id="GAR1000",
        subscriber="ana",
        phone="2175550100",
    ),
    *_member(
        "luis",
        given="Luis",
        family="Garcia",
        birth_date="2010-05-06",
        gender="male",
        member_id="GAR1001",
        subscriber_id="GAR1000",
        subscriber="ana",
        phone="2175550100",
    ),
    # Twins: same birth date, surname, home and subscriber id; other first names.
    *_member(
        "jin",
        given="Jin",
        family="Kim",
        birth_date="1972-09-10",
        gender="male",
        member_id="KIM2000",
        subscriber_id="KIM2000",
        subscriber="jin",
        phone="2175550200",
        address=ELSEWHERE,
    ),
    *_member(
        "mia",
        given="Mia",
        family="Kim",
        birth_date="2005-07-08",
        gender="female",
        member_id="KIM2001",
        subscriber_id="KIM2000",
        subscriber="jin",
        phone="2175550200",
        address=ELSEWHERE,
    ),
    *_member(
        "emma",
        given="Emma",
        family="Kim",
        birth_date="2005-07-08",
        gender="female",
        member_id="KIM2002",
        subscriber_id="KIM2000",
        subscriber="jin",
        phone="2175550200",
        address=ELSEWHERE,
    ),
    # Unrelated members.
    *_member(
        "olivia",
        given="Olivia",
        family="Patel",
        birth_date="1990-11-12",
        gender="female",
        member_id="PAT3000",
        subscriber_id="PAT3000",
        subscriber="olivia",
        phone="2175550300",
        address={"line": ["5 Elm Road"], "postalCode": "62702"},
    ),
    *_member(
        "noah",
        given="Noah",
        family="Chen",
        birth_date="1985-03-04",
        gender="male",
        member_id="CHE4000",
        subscriber_id="CHE4000",
        subscriber="noah",
        phone="2175550400",
        address={"line": ["77 Pine Lane"], "postalCode": "62703"},
    ),
]


def _request(
    request_id: str,
    *,
    given: str,
    family: str,
    birth_date: str,
    gender: str,
    member_id: str | None,
    subscriber_id: str | None,
    address: dict[str, Any] | None = None,
    phone: str | None = None,
    relationship: str = "self",
) -> dict[str, Any]:
    """$member-match Parameters as a new payer sends them, with an id; card data as given."""
    member: dict[str, Any] = {
        "given": [given],
        "family": family,
        "birth_date": birth_date,
        "gender": gender,
    }
    if address is not None:
        member["address"] = {"line": address["line"], "postal_code": address["postalCode"]}
    if phone is not None:
        member["phone"] = phone
    raw = an_exchange_request(**member)
    raw["member"] = member
    raw["old_coverage"] = {
        "member_id": member_id or "placeholder",
        "subscriber_id": subscriber_id,
        "relationship": relationship,
    }
    parameters = member_match_parameters(raw)
    coverage = next(
        p["resource"] for p in parameters["parameter"] if p["name"] == "CoverageToMatch"
    )
    if member_id is None:  # no member id on the card the member remembers
        coverage.pop("identifier", None)
    if subscriber_id is None:
        coverage.pop("subscriberId", None)
    return {**parameters, "id": request_id}


@contextmanager
def _platform(data_dir: Path, env: dict[str, str]) -> Iterator[Any]:
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    platform = build_platform(
        load_settings(data_dir=data_dir, database_url=env.get("PAYERBRIDGE_DATABASE_URL") or None)
    )
    try:
        yield platform
    finally:
        platform.close()


def test_identity_reindex_train_and_match_a_request_file(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    env = database_env()
    data_dir = tmp_path / "data"
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"".join(orjson.dumps(resource) + b"\n" for resource in MEMBERS))

    untrained = run_cli(["identity", "train", "--data-dir", str(data_dir)], env=env)
    assert untrained.returncode == 4  # nothing to train on: the state, not the input
    assert "no members are indexed" in untrained.stderr

    imported = run_cli(["import", "--data-dir", str(data_dir), str(members)], env=env)
    assert imported.returncode == 0, imported.stderr
    reindexed = run_cli(["identity", "reindex", "--data-dir", str(data_dir)], env=env)
    assert reindexed.returncode == 0, reindexed.stderr
    assert "7 members indexed" in reindexed.stdout

    trained = run_cli(["identity", "train", "--data-dir", str(data_dir), "--seed", "3"], env=env)
    assert trained.returncode == 0, trained.stderr
    assert "model fs-" in trained.stdout and "active" in trained.stdout
    with _platform(data_dir, env) as platform:
        active = platform.identity.active_model(DEFAULT_SPEC.fingerprint)
        assert active is not None and f"model {active.version} active" in trained.stdout
        with platform.engine.connect() as connection:
            stored = connection.execute(select(identity_models)).all()
        assert [row.version for row in stored] == [active.version]
        assert stored[0].trained_on == 7
        summary = orjson.loads(stored[0].summary)
        assert summary["members"] == 7 and summary["blocked_pairs"] > 0

    lines = [
        _request(
            "req-exact",
            given="Luis",
            family="Garcia",
            birth_date="2010-05-06",
            gender="male",
            member_id="GAR1001",
            subscriber_id="GAR1000",
            relationship="child",
        ),
        _request(
            "req-no-card",
            given="Ana",
            family="Garcia",
            birth_date="1980-02-03",
            gender="female",
            member_id=None,
            subscriber_id=None,
            address=HOME,
            phone="2175550100",
        ),
        _request(
            "req-twin",
            given="Mia",
            family="Kim",
            birth_date="2005-07-08",
            gender="female",
            member_id=None,
            subscriber_id="KIM2000",
            relationship="child",
        ),
        _request(
            "req-stranger",
            given="Zora",
            family="Quinlan",
            birth_date="1961-12-30",
            gender="female",
            member_id="ZZZ9999",
            subscriber_id="ZZZ9999",
            address={"line": ["1 Far Away"], "postalCode": "99501"},
            phone="9075550999",
        ),
    ]
    no_patient = {"resourceType": "Parameters", "id": "req-no-patient", "parameter": []}
    requests = tmp_path / "requests.ndjson"
    requests.write_bytes(
        orjson.dumps(lines[0])
        + b"\n"
        + orjson.dumps(lines[1])
        + b"\n{broken\n"
        + orjson.dumps(lines[2])
        + b"\n"
        + orjson.dumps(no_patient)
        + b"\n"
        + orjson.dumps(lines[3])
        + b"\n"
    )
    answers_path = tmp_path / "answers.ndjson"
    matched = run_cli(
        [
            "identity",
            "match",
            "--data-dir",
            str(data_dir),
            "--requests",
            str(requests),
            "--out",
            str(answers_path),
        ],
        env=env,
    )
    assert matched.returncode == 0, matched.stderr
    answers = [orjson.loads(line) for line in answers_path.read_bytes().splitlines()]
    assert [a["request"] for a in answers] == [
        "req-exact",
        "req-no-card",
        None,
        "req-twin",
        "req-no-patient",
        "req-stranger",
    ]
    for answer in answers:
        assert set(answer) == {"request", "outcome", "member", "score", "decision"}
    exact, no_card, broken, twin, no_patient_answer, stranger = answers

    assert exact["outcome"] == "match" and exact["member"] == "luis"
    assert exact["score"] > 0.99 and exact["decision"]

    assert no_card["outcome"] in ("match", "review")
    assert no_card["member"] in ("ana", None) and no_card["decision"]

    assert twin["outcome"] in ("match", "review", "nomatch")
    assert twin["member"] in ("mia", None)

    assert stranger == {
        "request": "req-stranger",
        "outcome": "nomatch",
        "member": None,
        "score": None,
        "decision": stranger["decision"],
    }
    assert stranger["decision"]
    for invalid in (broken, no_patient_answer):
        assert invalid["outcome"] == "invalid"
        assert invalid["member"] is None and invalid["score"] is None
        assert invalid["decision"] is None

    with _platform(data_dir, env) as platform:
        for answer in (exact, no_card, twin, stranger):
            decision = platform.identity.decision(answer["decision"])
            assert decision is not None and decision["outcome"] == answer["outcome"]
            assert decision["requester"] == "cli:identity-match"
            assert decision["model_version"] == active.version
        reviewed = {
            case.decision_id: case
            for case in platform.identity.reviews(ReviewQuery(status="open", limit=10))
        }
        # A review names the member the request is about, never a relative.
        if no_card["outcome"] == "review":
            assert reviewed[no_card["decision"]].candidate_ids == ("ana",)
        if twin["outcome"] == "review":
            assert reviewed[twin["decision"]].candidate_ids == ("mia",)
        assert len(reviewed) == [no_card["outcome"], twin["outcome"]].count("review")

    assert "match" in matched.stderr and "invalid" in matched.stderr
    counts = dict(
        line.split()
        for line in matched.stderr.splitlines()
        if line.strip() and line.split()[0] in ("match", "review", "nomatch", "multiple", "invalid")
    )
    assert counts["invalid"] == "2"
    assert sum(int(v) for v in counts.values()) == 6
    # Ids and counts only: no demographics or card numbers on the console.
    for output in (trained, matched, reindexed):
        for secret in ("Garcia", "Kim", "1980-02-03", "GAR1000", "2175550100"):
            assert secret not in output.stdout + output.stderr

    missing = run_cli(
        [
            "identity",
            "match",
            "--data-dir",
            str(data_dir),
            "--requests",
            str(tmp_path / "nope.ndjson"),
            "--out",
            str(answers_path),
        ],
        env=env,
    )
    assert missing.returncode == 2 and "nope.ndjson" in missing.stderr


def test_parallel_match_answers_like_the_serial_one_in_input_order(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    """Several worker processes decide chunks of the file; the answers come back in input
    order, equal to one process's, and every decision is stored with its audit event."""
    env = database_env()
    data_dir = tmp_path / "data"
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"".join(orjson.dumps(resource) + b"\n" for resource in MEMBERS))
    imported = run_cli(["import", "--data-dir", str(data_dir), str(members)], env=env)
    assert imported.returncode == 0, imported.stderr
    kinds = [
        _request(
            "",
            given="Luis",
            family="Garcia",
            birth_date="2010-05-06",
            gender="male",
            member_id="GAR1001",
            subscriber_id="GAR1000",
            relationship="child",
        ),
        _request(
            "",
            given="Ana",
            family="Garcia",
            birth_date="1980-02-03",
            gender="female",
            member_id=None,
            subscriber_id=None,
            address=HOME,
            phone="2175550100",
        ),
        _request(
            "",
            given="Zora",
            family="Quinlan",
            birth_date="1961-12-30",
            gender="female",
            member_id="ZZZ9999",
            subscriber_id="ZZZ9999",
        ),
    ]
    lines = []  # more lines than one chunk (500), a broken one and a blank one among them
    for i in range(1_100):
        lines.append(
            b"{broken"
            if i == 700
            else b""
            if i == 701
            else orjson.dumps({**kinds[i % 3], "id": f"req-{i}"})
        )
    requests = tmp_path / "requests.ndjson"
    requests.write_bytes(b"\n".join(lines) + b"\n")

    answers = {}
    for workers in ("1", "2"):
        out = tmp_path / f"answers-{workers}.ndjson"
        matched = run_cli(
            [
                "identity",
                "match",
                "--data-dir",
                str(data_dir),
                "--requests",
                str(requests),
                "--out",
                str(out),
                "--workers",
                workers,
            ],
            env=env,
        )
        assert matched.returncode == 0, matched.stderr
        answers[workers] = [orjson.loads(line) for line in out.read_bytes().splitlines()]

    serial, parallel = answers["1"], answers["2"]
    expected = [f"req-{i}" for i in range(1_100) if i != 701]
    expected[700] = None  # the broken line
    assert [a["request"] for a in parallel] == expected
    assert [{**a, "decision": None} for a in parallel] == [{**a, "decision": None} for a in serial]
    assert {a["outcome"] for a in parallel} >= {"match", "nomatch", "invalid"}
    decided = [a["decision"] for a in serial + parallel if a["decision"]]
    assert len(set(decided)) == len(decided) == 2 * 1_098
    with _platform(data_dir, env) as platform:
        for answer in parallel[::97]:
            if answer["decision"]:
                stored = platform.identity.decision(answer["decision"])
                assert stored is not None and stored["outcome"] == answer["outcome"]
                events = platform.audit.for_entity("IdentityDecision", answer["decision"])
                assert [e["outcome"] for e in events] == [answer["outcome"]]
