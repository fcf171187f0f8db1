"""The compliance report as a regulator reads it (issue 68): our duties apart from the
partners' answer times we only observe (a partner's slowness never our miss); the plan's
identity in the JSON, the CSV and the table; each rule's citation with its confirmation
status and caveat; and rows closed when a member's opt-in is revoked or the member
leaves, counted apart, never pending or missed afterwards, whatever happened before."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.clocks import (
    CLOSED_REVOKED,
    Duty,
    ObligationClock,
    Subject,
    SubjectType,
    duty_of,
    new_clock,
    standing_now,
)
from payerbridge.compliance.model import Standing
from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT, REQUIRED
from payerbridge.compliance.report import (
    OBSERVED_NOTE,
    PlanIdentity,
    compliance_report,
    report_csv,
    report_json,
    report_table,
    report_window,
)
from tests.unit.compliance.test_clocks import MONDAY, OBLIGATIONS, _exchange_clock, _Rows

PLAN = PlanIdentity("Example Health Plan", "1234567893", "https://fhir.example.org", "9.9.9")
WINDOW = report_window("2027-02-01", "2027-04-01", "America/New_York")


def _partner_answer(n: int, **changes: object) -> ObligationClock:
    """The old payer's answer to our exchange ``ex-<n>``, as we saw it."""
    clock = new_clock(
        OBLIGATIONS,
        ANSWER_WITHIN,
        Subject(SubjectType.EXCHANGE, f"ex-{n}"),
        {"request_received": MONDAY},
        clock_id=f"p-{n}",
        at=MONDAY,
        partner_id="old-payer",
    )
    return replace(clock, **changes)  # type: ignore[arg-type]


def _our_answer(n: int, subject: SubjectType = SubjectType.REVIEW, **changes: object) -> Any:
    clock = new_clock(
        OBLIGATIONS,
        ANSWER_WITHIN,
        Subject(subject, f"case-{n}"),
        {"request_received": MONDAY},
        clock_id=f"o-{n}",
        at=MONDAY,
    )
    return replace(clock, **changes)  # type: ignore[arg-type]


def _json(*clocks: ObligationClock, now: datetime) -> dict[str, Any]:
    report = compliance_report(WINDOW, _Rows(*clocks), OBLIGATIONS, now, plan=PLAN)
    return report_json(report)


def test_a_partners_slow_answers_are_observed_apart_and_never_our_miss() -> None:
    # 9 of 11 rows are the old payers' answers to us (the complaint): all late.
    late = [_partner_answer(n) for n in range(9)]
    ours = [_exchange_clock(100, done_at=MONDAY), _our_answer(1, done_at=MONDAY)]
    shown = _json(*late, *ours, now=MONDAY + timedelta(days=10))
    assert shown["totals"]["missed"] == 0 and shown["totals"]["met"] == 2
    assert {e["obligation"]: e["duty"] for e in shown["obligations"]} == {
        **{name: "ours-as-new-payer" for name in REQUIRED - {ANSWER_WITHIN}},
        ANSWER_WITHIN: "ours-as-old-payer",
    }
    assert all(e["counted_as"] == "our compliance" for e in shown["obligations"])
    ours_answer = next(e for e in shown["obligations"] if e["obligation"] == ANSWER_WITHIN)
    assert [s["subject_id"] for s in ours_answer["met"]["subjects"]] == ["case-1"]
    observed = shown["partners_observed"]
    assert observed["note"] == OBSERVED_NOTE and observed["totals"]["missed"] == 9
    (answers,) = observed["obligations"]
    assert (answers["obligation"], answers["duty"]) == (ANSWER_WITHIN, "partner-observed")
    assert answers["counted_as"].startswith("observed")
    assert {s["partner_id"] for s in answers["missed"]["subjects"]} == {"old-payer"}
    assert shown["totals_by_duty"]["ours-as-old-payer"]["met"] == 1


def test_whose_duty_a_row_is_follows_its_role_and_subject() -> None:
    assert duty_of("requester", SubjectType.EXCHANGE) is Duty.OURS_REQUESTING
    assert duty_of("responder", SubjectType.EXCHANGE) is Duty.PARTNER_OBSERVED
    assert duty_of("responder", SubjectType.ONBOARDING_CHUNK) is Duty.PARTNER_OBSERVED
    for ours in (SubjectType.REVIEW, SubjectType.REQUEST, SubjectType.BULK_JOB):
        assert duty_of("responder", ours) is Duty.OURS_ANSWERING
    assert duty_of("requester", SubjectType.ONBOARDING) is Duty.OURS_REQUESTING


def test_the_report_names_the_plan_the_window_and_the_software() -> None:
    now = MONDAY + timedelta(days=1)
    shown = _json(_exchange_clock(1), now=now)
    assert shown["plan"] == {
        "name": "Example Health Plan",
        "npi": "1234567893",
        "base_url": "https://fhir.example.org",
    }
    assert shown["generated_at"] == now.isoformat()
    assert (shown["from"], shown["to"], shown["to_included"]) == ("2027-02-01", "2027-04-01", False)
    assert shown["calendar_zone"] == "America/New_York"
    assert shown["obligations_version"] == OBLIGATIONS.version
    assert shown["software"] == {"name": "payerbridge", "version": "9.9.9"}
    report = compliance_report(WINDOW, _Rows(_exchange_clock(1)), OBLIGATIONS, now, plan=PLAN)
    table = report_table(report)
    assert "Plan: Example Health Plan (NPI 1234567893) at https://fhir.example.org" in table
    assert "calendar America/New_York" in table and "payerbridge 9.9.9" in table
    assert table.index("OUR DUTIES") < table.index("PARTNERS' ANSWER TIMES (observed)")
    text = "".join(report_csv(WINDOW, _Rows(_exchange_clock(1)), OBLIGATIONS, now, plan=PLAN))
    (line,) = list(csv.DictReader(io.StringIO(text)))
    assert (line["plan_name"], line["plan_npi"]) == ("Example Health Plan", "1234567893")
    assert line["plan_base_url"] == "https://fhir.example.org"
    assert (line["window_from"], line["window_to"]) == ("2027-02-01", "2027-04-01")
    assert line["calendar_zone"] == "America/New_York" and line["software_version"] == "9.9.9"
    assert line["generated_at"] == now.isoformat() and line["duty"] == "ours-as-new-payer"


def test_each_obligation_keeps_its_citation_status_and_caveat() -> None:
    shown = _json(_exchange_clock(1), _partner_answer(1), now=MONDAY)
    entries = [*shown["obligations"], *shown["partners_observed"]["obligations"]]
    for entry in entries:
        rule = OBLIGATIONS[entry["obligation"]].source
        source = entry["source"]
        assert (source["citation"], source["document"]) == (rule.citation, rule.document)
        assert source["confirmed"] is rule.confirmed
        assert source["status"] == ("confirmed" if rule.confirmed else "not yet confirmed")
        if not rule.confirmed:
            assert source["caveat"], entry  # never dropped
    request = next(e for e in entries if e["obligation"] == REQUEST_AFTER_ENROLMENT)
    assert request["source"]["status"] == "not yet confirmed"
    assert "being confirmed" in request["source"]["caveat"]
    table = report_table(compliance_report(WINDOW, _Rows(), OBLIGATIONS, MONDAY, plan=PLAN))
    assert "[not yet confirmed]" in table and "caveat: " in table
    text = "".join(report_csv(WINDOW, _Rows(_exchange_clock(1)), OBLIGATIONS, MONDAY))
    (line,) = list(csv.DictReader(io.StringIO(text)))
    assert line["citation"] == "42 CFR 422.121(b)(4)"
    assert line["confirmation"] == "not yet confirmed" and line["caveat"]


def test_a_row_closed_on_revocation_is_counted_apart_neither_met_nor_missed() -> None:
    revoked_at = MONDAY + timedelta(days=1)
    closed = _exchange_clock(1, standing=Standing.CLOSED, done_at=revoked_at, reason=CLOSED_REVOKED)
    now = MONDAY + timedelta(days=30)
    assert standing_now(OBLIGATIONS, closed, now).standing is Standing.CLOSED
    shown = _json(closed, _exchange_clock(2), now=now)
    request = next(e for e in shown["obligations"] if e["obligation"] == REQUEST_AFTER_ENROLMENT)
    assert request["counts"]["closed"] == 1 and request["counts"]["missed"] == 1
    assert request["closed"]["reasons"] == {CLOSED_REVOKED: 1}
    (subject,) = request["closed"]["subjects"]
    assert subject["closed_at"] == revoked_at.isoformat() and subject["done_at"] is None
    assert subject["why"] == f"closed: {CLOSED_REVOKED}"
    assert shown["totals"]["closed"] == 1


# The generative check: a member's rows under any sequence of events, revoked somewhere.


@dataclass
class _Ledger:
    """The ``ClockLedger`` semantics that matter here, in memory: a write touches only the
    rows not done yet (``done_at IS NULL``), as the SQL does."""

    rows: dict[tuple[str, str], ObligationClock] = field(default_factory=dict)

    def start(self, clock: ObligationClock) -> None:
        self.rows.setdefault((clock.obligation, clock.subject.id), clock)

    def _running(self, subject: str, obligations: tuple[str, ...]) -> list[ObligationClock]:
        return [
            c
            for c in self.rows.values()
            if c.subject.id == subject and c.obligation in obligations and c.done_at is None
        ]

    def settle(self, subject: str, obligation: str, at: datetime) -> None:
        for c in self._running(subject, (obligation,)):
            self.rows[(c.obligation, subject)] = replace(c, done_at=at)

    def close(self, subject: str, at: datetime) -> None:
        for c in self._running(subject, (REQUEST_AFTER_ENROLMENT, ANSWER_WITHIN)):
            closed = replace(c, done_at=at, standing=Standing.CLOSED, reason=CLOSED_REVOKED)
            self.rows[(c.obligation, subject)] = closed


_EVENTS = st.lists(
    st.tuples(st.sampled_from(["submit", "asked", "received", "revoke"]), st.integers(0, 24 * 12)),
    min_size=1,
    max_size=12,
)


@given(events=_EVENTS, members=st.integers(1, 3), read_after=st.integers(0, 24 * 400))
def test_no_revoked_members_running_obligation_ever_reads_pending_or_missed(
    events: list[tuple[str, int]], members: int, read_after: int
) -> None:
    ledger, revoked_at = _Ledger(), {}
    running_at_revoke: dict[str, set[str]] = {}
    for n, (event, hours) in enumerate(events):
        subject, at = f"ex-{n % members}", MONDAY + timedelta(hours=hours)
        if subject in revoked_at:
            at = max(at, revoked_at[subject])  # after the revocation nothing is asked
            if event != "revoke":
                continue
        if event == "submit":
            ledger.start(_exchange_clock(0, subject=Subject(SubjectType.EXCHANGE, subject)))
        elif event == "asked":
            ledger.settle(subject, REQUEST_AFTER_ENROLMENT, at)
            answer = _partner_answer(0, subject=Subject(SubjectType.EXCHANGE, subject))
            ledger.start(replace(answer, started_at=at))
        elif event == "received":
            ledger.settle(subject, ANSWER_WITHIN, at)
        elif subject not in revoked_at:
            running_at_revoke[subject] = {
                c.obligation
                for c in ledger.rows.values()
                if c.subject.id == subject and not c.done_at
            }
            ledger.close(subject, at)
            revoked_at[subject] = at
    for subject, at in revoked_at.items():
        now = at + timedelta(hours=read_after)
        for clock in (c for c in ledger.rows.values() if c.subject.id == subject):
            found = standing_now(OBLIGATIONS, clock, now).standing
            assert found not in (Standing.PENDING, Standing.AT_RISK), clock
            if clock.obligation in running_at_revoke[subject]:
                assert found is Standing.CLOSED, clock
            # Counted apart: the report never counts it met or missed.
    clocks = list(ledger.rows.values())
    report = compliance_report(WINDOW, _Rows(*clocks), OBLIGATIONS, MONDAY + timedelta(days=400))
    closed = sum(e.counts()["closed"] for e in report.obligations)
    assert closed == sum(len(v) for v in running_at_revoke.values())
