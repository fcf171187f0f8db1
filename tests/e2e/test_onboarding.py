"""Plan-year onboarding between two payer processes: the new payer submits its members to
the old payer's ``$bulk-member-match``, exports the matched members' histories and imports
them with Provenance, by API (by ``payerbridge onboard``, which resumes a run rather than
repeat it: test_onboarding_cli.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from payerbridge.fhir.resources import is_member_record
from tests.builders import WITHHELD_UNDER_REGULAR, a_member_reaching_sensitive_shared_data
from tests.e2e.onboarding import (
    FOUR,
    PARTNER,
    imported,
    old_payers_patients,
    two_payers,
    wait_done,
)
from tests.servers import ServerProcess, new_key


@pytest.fixture
def payers(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> tuple[ServerProcess, ServerProcess]:
    return two_payers(server, tmp_path)


def test_four_members_onboarded_by_api_with_their_results_and_histories(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        report = wait_done(client, answer.headers["Location"])
        assert report["status"] == "completed", report
        assert report["results"] == {
            "match": 2,
            "nomatch": 1,
            "consentconstraint": 1,
            "withdrawn": 0,
            "notexported": 0,
            "pending": 0,
        }
        assert report["imported_members"] == 2 and report["chunks"] == {"total": 2, "done": 2}
        items = client.get(f"{answer.headers['Location']}/members").json()["items"]
        assert [(i["member_id"], i["result"]) for i in items] == [
            ("N-ANA", "match"),
            ("N-LUIS", "match"),
            ("N-ZORA", "nomatch"),
            ("N-NOOR", "consentconstraint"),
        ]
        # Each member's end carries its reason, as an exchange's does.
        assert [i["reason"]["code"] for i in items] == [
            "completed",
            "completed",
            "no-match",
            "consent-constraint",
        ]
    stored = imported(new)
    sources = {r["meta"]["source"].rsplit("/fhir/", 1)[1] for r in stored if "source" in r["meta"]}
    # Ana's record as her regular consent lets it go, Luis's whole record; nothing else.
    ana = set(a_member_reaching_sensitive_shared_data("p1")) - WITHHELD_UNDER_REGULAR
    luis = {"Patient/luis", "Coverage/luis-cov", "Condition/luis-asthma"}
    records = ana | luis
    assert records <= sources
    # Beside them, the old payer's transmitter Provenance, one per member, kept as received.
    transmitters = sources - records
    assert len(transmitters) == 2 and all(r.startswith("Provenance/") for r in transmitters)
    assert not sources & WITHHELD_UNDER_REGULAR
    # Each member's records under its one Patient: ours for the member (the plan held
    # none for either), the old payer's Patient kept beside it as a source, linked to it.
    patients = old_payers_patients(stored)
    assert len(patients) == 2
    ones = {p["link"][0]["other"]["reference"] for p in patients}
    members = [r for r in stored if is_member_record(r)]
    assert ones == {f"Patient/{r['id']}" for r in members} and len(members) == 2
    assert sum(1 for r in stored if r["resourceType"] == "Patient") == 4
    for r in stored:
        subject = (r.get("subject") or r.get("beneficiary") or {}).get("reference")
        assert subject is None or subject in ones, r["resourceType"]
    with new.client() as client:
        items = client.get(f"{answer.headers['Location']}/members").json()["items"]
        report = client.get(answer.headers["Location"]).json()
    assert [i["member_patient"]["how"] if i["member_patient"] else None for i in items] == [
        "derived-none",
        "derived-none",
        None,
        None,
    ]
    assert {i["member_patient"]["patient"] for i in items[:2]} == ones
    assert report["member_patients"] == {"derived-none": 2}
    # Under our ids, with the old payer's Provenance kept and ours added per member.
    ids = {f"{r['resourceType']}/{r['id']}" for r in stored}
    assert not ids & (ana | luis)
    receipts = [
        r
        for r in stored
        if r["resourceType"] == "Provenance" and r.get("activity", {}).get("coding")
    ]
    assert len(receipts) == 2
    for receipt in receipts:
        assert {t["reference"] for t in receipt["target"]} <= ids

    # The same Idempotency-Key answers with the run it started, and repeats nothing.
    with new.client() as client:
        key = new_key()
        first = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR[1:2]}, headers=key
        )
        again = client.post(
            "/onboardings", json={"partner": PARTNER, "members": FOUR[1:2]}, headers=key
        )
        assert first.json()["id"] == again.json()["id"]
        wait_done(client, first.headers["Location"])
        other = new.register_client("other", scope="payerbridge/exchanges")
        with new.client_with(other) as stranger:
            assert stranger.get(first.headers["Location"]).status_code == 404


def test_a_member_who_revokes_the_opt_in_while_the_onboarding_runs_is_not_imported(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    members = [FOUR[1], FOUR[2], FOUR[0], FOUR[3]]  # Ana and Noor in the second round trip
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": members}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        [consent] = client.get("/consents", params={"member_id": "N-ANA"}).json()
        assert client.post(f"/consents/{consent['id']}/$revoke").status_code == 200
        report = wait_done(client, answer.headers["Location"])
        assert report["results"]["withdrawn"] == 1 and report["results"]["match"] == 1
        items = client.get(f"{answer.headers['Location']}/members").json()["items"]
        assert items[2]["reason"]["code"] == "withdrawn"
        assert {k: items[2][k] for k in ("member_id", "result", "imported")} == {
            "member_id": "N-ANA",
            "result": "withdrawn",
            "imported": 0,
        }
        assert items[3]["result"] == "consentconstraint"  # asked about without her
    patients = old_payers_patients(imported(new))
    assert [p["name"][0]["given"] for p in patients] == [["Luis"]]


def test_bad_onboardings_are_refused_saying_which_member_and_why(
    payers: tuple[ServerProcess, ServerProcess],
) -> None:
    _, new = payers
    no_consent = {k: v for k, v in FOUR[0].items() if k != "consent"}
    twice = [FOUR[1], FOUR[1]]
    with new.client() as client:
        for members, text in (
            ([no_consent], "line 1: consent"),
            (twice, "line 2: member N-LUIS is also on line 1"),
            ([{**FOUR[0], "old_payer": "elsewhere"}], "line 1: old_payer"),
        ):
            answer = client.post(
                "/onboardings", json={"partner": PARTNER, "members": members}, headers=new_key()
            )
            assert answer.status_code == 400, answer.text
            assert any(text in i["details"]["text"] for i in answer.json()["issue"]), answer.text
        unknown = client.post(
            "/onboardings", json={"partner": "nobody", "members": FOUR[:1]}, headers=new_key()
        )
        assert unknown.status_code == 422
        assert (
            client.post("/onboardings", json={"partner": PARTNER, "members": FOUR[:1]}).status_code
            == 400
        )
