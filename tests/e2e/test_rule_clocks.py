"""The rule's clocks over simulated months (issue 54, ADRs 0037 and 0040), two payers on
one simulated clock the test moves (``PAYERBRIDGE_SIMULATED_CLOCK_FILE``), not sleeps.

Three members are scheduled for their first request before their coverage starts: one
whose coverage at the old payer goes on (concurrent), one whose coverage there ends
(run-off), and one whose old payer is down. The sweep sends each first request once
coverage has started; the concurrent member is pulled again a quarter later asking
``_since``; a claim the old payer records after the run-off member's coverage ended
arrives in the run-off pull and nothing older comes twice; the compliance report shows
each period met, and the member whose old payer was down missed, with the reason.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from payerbridge import clock as process_clock
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    QUARTERLY,
    REQUEST_AFTER_ENROLMENT,
    RUN_OFF,
)
from tests.e2e.test_exchange import (
    network,  # noqa: F401 (the module's network fixture)
    start_payers,
    switcher_to,
    wait_terminal,
)
from tests.e2e.test_incremental_exchange import _a_new_condition, _received
from tests.servers import ALL_SCOPES, ServerProcess, free_port

PLAN = ZoneInfo("America/New_York")  # the shipped calendar's zone
# What an old payer that does not answer holds a pull up with, by how far it got when the
# clock moved on: its calls failing, its breaker open, the exchange's budget spent, its
# deadline passed (ADR 0047: exchanges try until their deadline).
OUTAGE = {
    "partner-unavailable",
    "attempts-exhausted",
    "circuit-open",
    "budget-exhausted",
    "deadline-exceeded",
}


class Clock:
    """The simulated clock both payers read: a file holding the instant it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(datetime.now(UTC))

    def set(self, instant: datetime) -> None:
        self.now = instant
        written = self.path.with_suffix(".new")
        written.write_text(instant.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        written.replace(self.path)

    def to(self, day: date, hour: int = 12) -> None:
        self.set(datetime(day.year, day.month, day.day, hour, tzinfo=PLAN))

    def client(self, payer: ServerProcess, stack: ExitStack) -> httpx.Client:
        """The test's client of ``payer`` with a token issued at the clock's time: tokens
        expire by the payers' clock."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PAYERBRIDGE_SIMULATED_CLOCK_FILE", str(self.path))
            try:
                token = payer.register_client("tester", scope=ALL_SCOPES)
            finally:
                process_clock.simulate(None)
        return stack.enter_context(payer.client_with(token))


def _enrolled(request: dict[str, Any], covered: date, opted_in: date) -> dict[str, Any]:
    """The request with the member covered from ``covered``, opted in from ``opted_in``
    for two years."""
    request = copy.deepcopy(request)
    request["new_coverage"]["start"] = covered.isoformat()
    request["consent"]["start"] = opted_in.isoformat()
    request["consent"]["end"] = (opted_in + timedelta(days=730)).isoformat()
    return request


def _schedule(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/pull-schedules", json=body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = client.get(response.headers["location"]).json()
    return found


def _pulled(client: Any, schedule: dict[str, Any], pulls: int) -> dict[str, Any]:
    """The schedule once the sweep has started its pull number ``pulls`` and that pull
    has stopped."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current: dict[str, Any] = client.get(f"/pull-schedules/{schedule['id']}").json()
        if current["pulls"] >= pulls:
            wait_terminal(client, f"/exchanges/{current['last_exchange']}", timeout=60)
            return current
        time.sleep(0.3)
    raise AssertionError(f"the sweep did not start pull {pulls}: {current}")


def _moved_on(client: Any, schedule: dict[str, Any], kind: str) -> dict[str, Any]:
    """The schedule once the sweep has looked at its last pull and moved on to ``kind``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current: dict[str, Any] = client.get(f"/pull-schedules/{schedule['id']}").json()
        if not current["awaiting_pull"] and current["kind"] == kind:
            return current
        time.sleep(0.3)
    raise AssertionError(f"the schedule did not move on to {kind}: {current}")


def _subjects(entry: dict[str, Any], standing: str) -> dict[str, dict[str, Any]]:
    return {s["subject_id"]: s for s in entry[standing]["subjects"]}


def test_first_quarterly_and_run_off_pulls_meet_the_rule_on_a_simulated_clock(
    server: Callable[..., ServerProcess],
    network: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    today = datetime.now(PLAN).date()
    clock = Clock(tmp_path / "now")
    simulated = {"PAYERBRIDGE_SIMULATED_CLOCK_FILE": str(clock.path)}
    sweep = {
        **simulated,
        "PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "1",
        "PAYERBRIDGE_UPKEEP_GRACE_SECONDS": "1",
        "PAYERBRIDGE_RETRY_MAX_ATTEMPTS": "2",
        "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
    }
    old, new, _ = start_payers(server, network, old_env=simulated, new_env=sweep)
    with ExitStack() as stack:
        client = clock.client(new, stack)
        gone = client.post(
            "/partners",
            json={
                "id": "gone-plan",
                "name": "Gone Plan",
                "npi": "1245319599",
                "base_url": f"http://127.0.0.1:{free_port()}/fhir",
            },
        )
        assert gone.status_code == 201, gone.text
        ongoing = switcher_to(network, 0)
        ending = switcher_to(network, 1)
        stranded = switcher_to(network, 2, "gone-plan")
        ongoing_schedule = _schedule(
            client,
            {"request": _enrolled(ongoing["request"], today + timedelta(3), today)},
        )
        coverage_end = today + timedelta(20)
        ending_schedule = _schedule(
            client,
            {
                "request": _enrolled(ending["request"], today + timedelta(4), today + timedelta(5)),
                "coverage_end": coverage_end.isoformat(),
            },
        )
        stranded_schedule = _schedule(
            client, {"request": _enrolled(stranded["request"], today + timedelta(2), today)}
        )
        # Due at the later of coverage start (the plan's midnight) and the opt-in (the
        # consent's day, read in UTC here).
        for schedule, starts in (
            (ongoing_schedule, _midnight(today + timedelta(3), PLAN)),
            (ending_schedule, _midnight(today + timedelta(5), UTC)),
            (stranded_schedule, _midnight(today + timedelta(2), PLAN)),
        ):
            assert (schedule["kind"], schedule["pulls"]) == ("first", 0), schedule
            assert _instant(schedule["next_due_at"]) == starts
        for body, status, problem in (
            ({}, 400, "give exactly one of 'request'"),
            ({"request": ongoing["request"], "exchange": "x"}, 400, "give exactly one of"),
            ({"exchange": "no-such-exchange"}, 404, "does not exist"),
            (
                {"request": {**ongoing["request"], "since": "2026-01-01T00:00:00Z"}},
                400,
                "drop 'since'",
            ),
            ({"exchange": "x", "coverage_end": "soon"}, 400, "coverage_end"),
        ):
            refused = client.post("/pull-schedules", json=body)
            assert refused.status_code == status, (body, refused.text)
            assert problem in refused.text, refused.text
        assert client.get("/pull-schedules/nope").status_code == 404
        listed = client.get("/pull-schedules", params={"status": "active"}).json()
        assert listed["count"] == 3
        assert client.get("/pull-schedules", params={"_count": 0}).status_code == 400
        time.sleep(2)  # a sweep or two: nothing is due before coverage starts
        assert client.get(f"/pull-schedules/{ongoing_schedule['id']}").json()["pulls"] == 0

        # Day 5: every first request goes out, within its week.
        clock.to(today + timedelta(5))
        client = clock.client(new, stack)
        ongoing_first = _pulled(client, ongoing_schedule, 1)
        ending_first = _pulled(client, ending_schedule, 1)
        stranded_first = _pulled(client, stranded_schedule, 1)
        first_ongoing = client.get(f"/exchanges/{ongoing_first['last_exchange']}").json()
        first_ending = client.get(f"/exchanges/{ending_first['last_exchange']}").json()
        assert first_ongoing["state"] == first_ending["state"] == "completed"
        assert first_ongoing["since"] is None  # the whole record
        stranded_exchange = client.get(f"/exchanges/{stranded_first['last_exchange']}").json()
        assert stranded_exchange["state"] in ("failed", "dead_lettered"), stranded_exchange

        # Day 6: the sweep looks at each first pull and moves on to the period it owes.
        clock.to(today + timedelta(6), hour=14)
        client = clock.client(new, stack)
        ongoing_next = _moved_on(client, ongoing_schedule, "quarterly")
        ending_next = _moved_on(client, ending_schedule, "run-off")
        assert ongoing_next["last_received_at"] == first_ongoing["received_at"]
        assert ending_next["last_received_at"] == first_ending["received_at"]

        # Day 25, after the run-off member's coverage ended: the old payer records a
        # claim for them (a Condition, as the claim's diagnosis).
        clock.to(today + timedelta(25))
        condition = _a_new_condition(network, ending["old_patient_id"])
        added = tmp_path / "run-off.ndjson"
        added.write_bytes(orjson.dumps(condition))
        imported = old.cli("import", str(added))
        assert imported.returncode == 0, imported.stderr

        # The quarter's pull, asked since the first one's data was received.
        clock.set(_instant(ongoing_next["next_due_at"]) + timedelta(hours=1))
        client = clock.client(new, stack)
        quarter = _pulled(client, ongoing_next, 2)
        quarterly = client.get(f"/exchanges/{quarter['last_exchange']}").json()
        assert quarterly["since"] == first_ongoing["received_at"]
        assert quarterly["state"] == "completed", quarterly

        # The run-off pull brings the new claim, and nothing older again.
        clock.set(_instant(ending_next["next_due_at"]) + timedelta(hours=1))
        client = clock.client(new, stack)
        run_off = _pulled(client, ending_next, 2)
        runoff = client.get(f"/exchanges/{run_off['last_exchange']}").json()
        assert runoff["since"] == first_ending["received_at"]
        assert runoff["state"] == "completed", runoff
        assert _received(runoff) == {"Patient": 1, "Condition": 1}
        (end,) = [step for step in runoff["history"] if step["to"] == "completed"]
        assert end["detail"]["completeness"]["changed"] == {"Condition": 1}

        # The plan learns the concurrent coverage ends: the period owed now stands, the
        # ones after it follow the coverage (tests/unit/exchange/test_pulls.py).
        ends = (clock.now + timedelta(days=30)).date()
        patched = client.patch(
            f"/pull-schedules/{quarter['id']}", json={"coverage_end": ends.isoformat()}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["coverage_end"] == f"{ends.isoformat()}T00:00:00Z"
        bad = client.patch(f"/pull-schedules/{quarter['id']}", json={"coverage_end": "soon"})
        assert bad.status_code == 400 and "coverage_end" in bad.text

        # A day on, the sweep has looked at both pulls: the next periods are owed.
        clock.set(clock.now + timedelta(days=1, hours=1))
        client = clock.client(new, stack)
        _moved_on(client, quarter, "quarterly")
        _moved_on(client, run_off, "run-off")

        report = client.get(
            "/compliance/report",
            params={"from": today.isoformat(), "to": (today + timedelta(200)).isoformat()},
        )
        assert report.status_code == 200, report.text
        shown = {entry["obligation"]: entry for entry in report.json()["obligations"]}

    first = shown[REQUEST_AFTER_ENROLMENT]
    met = _subjects(first, "met")
    assert {first_ongoing["id"], first_ending["id"]} <= set(met)
    # The member whose old payer was down: missed, held up by the outage. Its row went
    # with each pull tried again, so it names the last one.
    (missed,) = first["missed"]["subjects"]
    assert missed["partner_id"] == "gone-plan"
    assert missed["reason"] in OUTAGE, missed
    assert "overdue" in missed["why"]
    assert first["counts"]["met"] == 2 and first["counts"]["missed"] == 1
    # The old payer's day, as we saw it: observed apart, never counted as our duty.
    observed = {e["obligation"]: e for e in report.json()["partners_observed"]["obligations"]}
    assert observed[ANSWER_WITHIN]["duty"] == "partner-observed"
    assert shown[ANSWER_WITHIN]["counts"]["met"] == 0  # we answered no one
    answered = _subjects(observed[ANSWER_WITHIN], "met")
    assert {first_ongoing["id"], first_ending["id"], quarterly["id"], runoff["id"]} <= set(answered)
    # Each period met by its pull; the periods after them are owed, not yet due.
    assert set(_subjects(shown[QUARTERLY], "met")) == {quarterly["id"]}
    assert set(_subjects(shown[RUN_OFF], "met")) == {runoff["id"]}
    for obligation in (QUARTERLY, RUN_OFF):
        assert shown[obligation]["counts"]["missed"] == 0
        (owed,) = shown[obligation]["pending"]["subjects"]
        assert owed["subject_type"] == "pull"

    # The member erased: the schedule made for their first request stops, its request cut.
    erased = new.cli("members", "erase", first_ongoing["imported_patient_id"], "--reason", "asked")
    assert erased.returncode == 0, erased.stderr
    listed = orjson.loads(new.cli("pulls", "list").stdout)
    stopped = {s["id"]: s["stop_reason"] for s in listed if s["status"] == "stopped"}
    assert stopped == {ongoing_schedule["id"]: "erased"}
    # A member whose opt-in is revoked is refused a schedule, with the reason.
    revoked = new.cli("consents", "revoke", first_ending["consent_id"])
    assert revoked.returncode == 0, revoked.stderr
    with ExitStack() as stack:
        body = {k: v for k, v in ending["request"].items() if k != "consent"}
        body["consent_id"] = first_ending["consent_id"]
        refused = clock.client(new, stack).post("/pull-schedules", json={"request": body})
    assert refused.status_code == 422, refused.text
    assert "no current opt-in" in refused.text and "revoked" in refused.text

    # The periods they owed are no longer owed: closed with the reason, never missed.
    with ExitStack() as stack:
        after = clock.client(new, stack).get(
            "/compliance/report",
            params={"from": today.isoformat(), "to": (today + timedelta(200)).isoformat()},
        )
    assert after.status_code == 200, after.text
    now_shown = {entry["obligation"]: entry for entry in after.json()["obligations"]}
    for obligation, reason in ((QUARTERLY, "member-erased"), (RUN_OFF, "opt-in-revoked")):
        entry = now_shown[obligation]
        assert entry["pending"]["subjects"] == [] and entry["counts"]["missed"] == 0
        (closed,) = entry["closed"]["subjects"]
        assert (closed["subject_type"], closed["reason"]) == ("pull", reason), closed
        assert entry["counts"]["met"] == shown[obligation]["counts"]["met"]  # kept as met


def _midnight(day: date, zone: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
