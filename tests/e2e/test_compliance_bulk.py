"""Bulk answers and bulk onboarding on the rule's clocks (issue 68), between two payer
processes: the new payer onboards four members at once, one of whom revokes the opt-in
while the run goes on. The new payer's report counts each member's request on its own
week (ours, as the new payer), the revoked member's closed, not pending or missed, and
the old payer's answers to each chunk apart, as observed; the old payer's report counts
its ``$bulk-member-match`` and export answers on its own one-business-day clock (ours, as
the old payer) and names the plan. The CLI's table says the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.security.model import AUDITOR_SCOPE
from tests.e2e.onboarding import FOUR, NEW_NPI, OLD_NPI, PARTNER, wait_done
from tests.e2e.test_onboarding import payers  # noqa: F401 (the two payers)
from tests.servers import ServerProcess, new_key


def _ours(report: dict[str, Any], obligation: str) -> dict[str, Any]:
    (entry,) = [e for e in report["obligations"] if e["obligation"] == obligation]
    return entry


def _subjects(entry: dict[str, Any], standing: str, kind: str) -> list[dict[str, Any]]:
    return [s for s in entry[standing]["subjects"] if s["subject_type"] == kind]


def test_bulk_onboarding_and_bulk_answers_run_on_the_same_clocks(
    payers: tuple[ServerProcess, ServerProcess],  # noqa: F811
) -> None:
    old, new = payers
    members = [FOUR[1], FOUR[2], FOUR[0], FOUR[3]]  # Ana (revoking) in the second chunk
    today = datetime.now(UTC).date()
    # The members' coverage starts 2027-01-01: their week starts then.
    span = {"from": (today - timedelta(2)).isoformat(), "to": "2027-01-05"}
    with new.client() as client:
        answer = client.post(
            "/onboardings", json={"partner": PARTNER, "members": members}, headers=new_key()
        )
        assert answer.status_code == 202, answer.text
        run = answer.json()["id"]
        [consent] = client.get("/consents", params={"member_id": "N-ANA"}).json()
        assert client.post(f"/consents/{consent['id']}/$revoke").status_code == 200
        done = wait_done(client, answer.headers["Location"])
        assert done["results"]["withdrawn"] == 1, done
        shown = client.get("/compliance/report", params=span)
        assert shown.status_code == 200, shown.text
        report = shown.json()

    assert (report["plan"]["name"], report["plan"]["npi"]) == ("New Plan", NEW_NPI)
    request = _ours(report, REQUEST_AFTER_ENROLMENT)
    assert request["duty"] == "ours-as-new-payer"
    asked = _subjects(request, "met", "onboarding")
    assert sorted(s["subject_id"] for s in asked) == [f"{run}:{n}" for n in (0, 1, 3)]
    assert {s["partner_id"] for s in asked} == {PARTNER}
    assert all(s["started_at"].startswith("2027-01-01") for s in asked)
    (revoked,) = _subjects(request, "closed", "onboarding")
    assert (revoked["subject_id"], revoked["reason"]) == (f"{run}:2", "opt-in-revoked")
    for standing in ("missed", "pending", "at_risk"):
        assert not _subjects(request, standing, "onboarding"), standing
    assert request["closed"]["reasons"] == {"opt-in-revoked": 1}
    # The old payer's answers to each chunk: observed, in their own section.
    (observed,) = report["partners_observed"]["obligations"]
    assert (observed["obligation"], observed["duty"]) == (ANSWER_WITHIN, "partner-observed")
    chunks = _subjects(observed, "met", "onboarding-chunk")
    assert sorted(s["subject_id"] for s in chunks) == [f"{run}:0", f"{run}:1"]
    assert not _subjects(_ours(report, ANSWER_WITHIN), "met", "onboarding-chunk")

    old.authorize("auditor", scope=AUDITOR_SCOPE)
    with old.client() as client:
        theirs = client.get("/compliance/report", params=span)
        assert theirs.status_code == 200, theirs.text
        answered = theirs.json()
    assert (answered["plan"]["name"], answered["plan"]["npi"]) == ("Old Plan", OLD_NPI)
    assert answered["plan"]["base_url"].startswith("http://127.0.0.1:")
    ours = _ours(answered, ANSWER_WITHIN)
    assert ours["duty"] == "ours-as-old-payer"
    jobs = _subjects(ours, "met", "bulk-job")
    # Two $bulk-member-match jobs, and the export of the first chunk's matched member.
    assert len(jobs) == 3 and {s["partner_id"] for s in jobs} == {"newplan"}
    for job in jobs:
        assert job["done_at"] is not None and job["done_at"] <= job["due_at"]
    assert answered["totals"]["missed"] == 0 and answered["partners_observed"]["totals"]["met"] == 0
    assert ours["source"]["status"] == "not yet confirmed" and ours["source"]["caveat"]

    table = old.cli("compliance", "report", "--from", span["from"], "--to", span["to"])
    assert table.returncode == 0, table.stderr
    assert f"Plan: Old Plan (NPI {OLD_NPI})" in table.stdout
    assert "OUR DUTIES: met 3" in table.stdout
    as_json = old.cli(
        "compliance", "report", "--from", span["from"], "--to", span["to"], "--format", "json"
    )
    assert orjson.loads(as_json.stdout)["totals"] == answered["totals"]
