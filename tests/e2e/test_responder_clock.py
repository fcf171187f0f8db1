"""The responder's clock through the public interface: a review case's answer is due one
business day from the request by the plan's own calendar (its days off and holidays, not
the federal ones), flagged at risk as the operator's obligations file says, met once
decided; and a calendar or obligations file that cannot be used stops the payer, naming
the field at fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import orjson

from payerbridge.compliance.calendar import ISO_DAYS, load_calendar
from tests.e2e.test_member_match import HOUSEHOLD, OLD_NPI, decide, open_case, operator
from tests.servers import ServerProcess, run_cli


def _shipped_obligations() -> dict[str, object]:
    text = files("payerbridge.compliance").joinpath("data/obligations.json").read_text()
    document: dict[str, object] = json.loads(text)
    return document


def test_a_review_answer_is_due_by_the_plans_calendar_and_flagged_at_risk(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    # The next two days are this plan's weekend, the third its own holiday: a case
    # opened today is answered by the close of the fourth day from now.
    calendar = tmp_path / "calendar.json"
    calendar.write_text(
        json.dumps(
            {
                "zone": "UTC",
                "days_off": [ISO_DAYS[(today + timedelta(days=d)).weekday()] for d in (1, 2)],
                "holidays": [{"date": (today + timedelta(days=3)).isoformat(), "name": "Plan Day"}],
            }
        )
    )
    obligations = _shipped_obligations()
    answer_rule = next(o for o in obligations["obligations"] if o["role"] == "responder")  # type: ignore[attr-defined]
    answer_rule["deadline"]["at_risk_before"] = {"days": 10}  # at risk from the start
    rules = tmp_path / "obligations.json"
    rules.write_text(json.dumps(obligations))
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(r) for r in HOUSEHOLD))
    payer = server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NPI": OLD_NPI,
            "PAYERBRIDGE_BUSINESS_CALENDAR": str(calendar),
            "PAYERBRIDGE_OBLIGATIONS_FILE": str(rules),
        },
        import_files=[members],
    )
    with operator(payer) as ops:
        case = open_case(payer, ops, "newplan-clock")
        opened = datetime.fromisoformat(case["opened_at"])
        expected = load_calendar(calendar.read_text()).deadline(opened, 1)
        answer = case["answer"]
        assert answer["obligation"] == "answer-within-one-business-day"
        assert datetime.fromisoformat(answer["due_at"]) == expected
        if opened.date() == today:  # past the weekend and the holiday
            assert expected == datetime.combine(today + timedelta(days=5), datetime.min.time(), UTC)
        assert answer["standing"] == "at_risk" and "left" in answer["why"]
        shown = ops.get(f"/identity/reviews/{case['id']}").json()
        assert shown["answer"] == answer
        listed = payer.cli("identity", "reviews", "list")
        assert listed.returncode == 0, listed.stderr
        assert "at risk" in listed.stdout
        decided = decide(ops, case["id"], version=1)
        assert decided.status_code == 200, decided.text
        met = decided.json()["answer"]
        assert (met["standing"], met["due_at"]) == ("met", answer["due_at"])


def test_a_calendar_or_obligations_file_that_cannot_be_used_stops_the_payer(
    tmp_path: Path,
) -> None:
    calendar = tmp_path / "calendar.json"
    calendar.write_text(
        json.dumps(
            {
                "zone": "America/New_York",
                "days_off": ["saturday", "sunday"],
                "holidays": [{"date": "2026-02-30", "name": "No Such Day"}],
            }
        )
    )
    data = str(tmp_path / "data")
    refused = run_cli(
        ["identity", "reviews", "list", "--data-dir", data],
        env={"PAYERBRIDGE_BUSINESS_CALENDAR": str(calendar)},
    )
    assert refused.returncode != 0
    assert "PAYERBRIDGE_BUSINESS_CALENDAR" in refused.stderr and "holidays.0.date" in refused.stderr
    assert "compliance-file-invalid" in refused.stderr  # its runbook's name
    obligations = _shipped_obligations()
    del obligations["obligations"][1]["source"]  # type: ignore[index]
    rules = tmp_path / "obligations.json"
    rules.write_text(json.dumps(obligations))
    refused = run_cli(  # refused before it binds a port: the port is never used
        ["serve", "--data-dir", data, "--port", "9"],
        env={"PAYERBRIDGE_OBLIGATIONS_FILE": str(rules)},
        timeout=60,
    )
    assert refused.returncode != 0
    assert "PAYERBRIDGE_OBLIGATIONS_FILE" in refused.stderr
    assert "obligations.1.source" in refused.stderr
