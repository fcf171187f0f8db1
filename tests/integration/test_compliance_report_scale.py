"""The compliance report of a window of many rows (ADR 0037): counted in the database,
the met subjects listed only up to the limit, the CSV streamed a page at a time. Twenty
thousand rows, written straight into the tables; no timing asserted, only what is read."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from payerbridge.bootstrap import Platform, utcnow
from payerbridge.compliance.clocks import ClockReader, ObligationClock, Tally
from payerbridge.compliance.model import StandingQuery
from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.compliance.report import compliance_report, report_csv, report_json, report_window
from payerbridge.store.tables import identity_decisions, obligation_clocks

MET, MISSED, AT_RISK, PENDING = 12_000, 30, 10, 20
ANSWERED, REVIEWED = 8_000, 50  # $member-match answered at once; sent to review (no row here)
PAGE = 1000


class _Counting:
    """The platform's reader, counting the rows it hands out."""

    def __init__(self, reader: ClockReader) -> None:
        self.reader = reader
        self.read = 0

    def tally(
        self, start: datetime, end: datetime, *, now: datetime, risk: Mapping[str, timedelta]
    ) -> Mapping[Tally, int]:
        return self.reader.tally(start, end, now=now, risk=risk)

    def standing_rows(self, query: StandingQuery) -> list[ObligationClock]:
        rows = self.reader.standing_rows(query)
        self.read += len(rows)
        return rows

    def started_between(
        self, start: datetime, end: datetime, *, obligation: str | None = None, page: int = 1000
    ) -> Iterator[ObligationClock]:
        for clock in self.reader.started_between(start, end, obligation=obligation, page=page):
            self.read += 1
            yield clock


def _rows(now: datetime) -> list[dict[str, Any]]:
    week = timedelta(days=7)
    shapes = (
        [("met", timedelta(days=20), True)] * MET
        + [("missed", timedelta(days=10), False)] * MISSED
        + [("at-risk", timedelta(days=6), False)] * AT_RISK
        + [("pending", timedelta(days=1), False)] * PENDING
    )
    rows = []
    for n, (kind, ago, done) in enumerate(shapes):
        started = now - ago - timedelta(seconds=n)
        rows.append(
            {
                "id": f"{kind}-{n:05}",
                "obligation": REQUEST_AFTER_ENROLMENT,
                "obligation_version": "v",
                "subject_type": "exchange",
                "subject_id": f"ex-{kind}-{n:05}",
                "partner_id": "old",
                "started_at": started,
                "due_at": started + week,
                "done_at": started + timedelta(hours=1) if done else None,
                "standing": "pending",
                "reason": "maintenance" if kind == "missed" else None,
                "updated_at": started,
            }
        )
    return rows


def _decisions(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d-{n:05}",
            "outcome": "review" if n < REVIEWED else "match",
            "member_id": None,
            "client_id": "newplan",
            "request_key": f"d-{n:05}",
            "policy_version": "single_exchange-abc",
            "model_version": "m",
            "decided_at": now - timedelta(days=3, seconds=n),
            "evidence": "{}",
        }
        for n in range(ANSWERED + REVIEWED)
    ]


def test_a_window_of_many_rows_is_counted_in_the_database_and_streamed(
    platform: Platform,
) -> None:
    now = utcnow()
    with platform.engine.begin() as connection:
        connection.execute(obligation_clocks.insert(), _rows(now))
        connection.execute(identity_decisions.insert(), _decisions(now))
    today = now.astimezone(platform.obligations.calendar.tz).date()
    window = report_window(
        (today - timedelta(days=30)).isoformat(),
        (today + timedelta(days=1)).isoformat(),
        platform.obligations.calendar.zone,
    )
    reader = _Counting(platform.clock_reader)

    report = compliance_report(window, reader, platform.obligations, now, subjects=100)
    shown = {entry["obligation"]: entry for entry in report_json(report)["obligations"]}
    request = shown[REQUEST_AFTER_ENROLMENT]
    assert request["counts"] == {
        "met": MET,
        "missed": MISSED,
        "at_risk": AT_RISK,
        "pending": PENDING,
        "closed": 0,
        "not_started": 0,
    }
    assert request["missed"]["reasons"] == {"maintenance": MISSED}
    assert request["at_risk"]["reasons"] == {"not-done": AT_RISK}
    assert len(request["met"]["subjects"]) == 100 and request["met"]["truncated"] is True
    for standing, count in (("missed", MISSED), ("at_risk", AT_RISK), ("pending", PENDING)):
        assert len(request[standing]["subjects"]) == count, standing
        assert request[standing]["truncated"] is False
    answered = shown[ANSWER_WITHIN]
    assert answered["counts"]["met"] == ANSWERED
    assert len(answered["met"]["subjects"]) == 100 and answered["met"]["truncated"] is True
    assert {s["subject_type"] for s in answered["met"]["subjects"]} == {"request"}
    assert reader.read == 100 + 100 + MISSED + AT_RISK + PENDING  # nothing else loaded

    reader.read = 0
    chunks = report_csv(window, reader, platform.obligations, now, page=PAGE)
    first = next(chunks)
    assert first.count("\n") == 1 + PAGE and reader.read <= 2 * PAGE  # a page, not all
    lines = list(csv.DictReader(io.StringIO(first + "".join(chunks))))
    assert len(lines) == MET + MISSED + AT_RISK + PENDING + ANSWERED
    standings = [line["standing"] for line in lines if line["obligation"] == ANSWER_WITHIN]
    assert standings == ["met"] * ANSWERED
    request_ids = [line["subject_id"] for line in lines if line["obligation"] != ANSWER_WITHIN]
    assert len(set(request_ids)) == len(request_ids)  # each row once across the pages
