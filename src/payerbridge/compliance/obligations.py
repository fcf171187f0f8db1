"""The rule's clocks as data (pure): each obligation a plan has under the payer-to-payer
rule, with the source it cites, read from a versioned file (``data/obligations.json``,
or the operator's ``PAYERBRIDGE_OBLIGATIONS_FILE``) so that a rule whose wording is
still being confirmed changes by configuration, not code.

Three shapes of obligation:

- a **deadline**: done within a limit (days, business days or hours) of when it started,
  the later of several events when it names more than one (``coverage_start`` and
  ``opt_in``), and at risk once less than ``at_risk_before`` of it is left;
- a **repeat**: done again every so often while a condition holds (``concurrent_coverage``)
  or from one event until another (``coverage_end`` until ``consent_end``: run-off);
- a **window**: how far back the data asked for reaches.

The code knows the events and conditions by name (``EVENTS``, ``CONDITIONS``) and the
obligations it acts on by id (``REQUIRED``); the file says the numbers and the sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from payerbridge.compliance.calendar import BusinessCalendar, FileFieldError, first_error
from payerbridge.compliance.model import (
    ANSWER_WITHIN,
    ASKING,
    QUARTERLY,
    REQUEST_AFTER_ENROLMENT,
    REQUIRED,
    RUN_OFF,
    Standing,
)

__all__ = [
    "ANSWER_WITHIN",
    "ASKING",
    "Assessment",
    "CONDITIONS",
    "EVENTS",
    "Limit",
    "NOT_CONFIRMED_CAVEAT",
    "Obligation",
    "ObligationError",
    "ObligationSet",
    "QUARTERLY",
    "REQUEST_AFTER_ENROLMENT",
    "REQUIRED",
    "RUN_OFF",
    "Source",
    "load_obligations",
    "shipped_obligations",
]

# The events a clock may start from, and the conditions a repeat may run while.
EVENTS = frozenset({"coverage_start", "opt_in", "request_received", "coverage_end", "consent_end"})
CONDITIONS = frozenset({"concurrent_coverage"})


class ObligationError(FileFieldError):
    """An obligations file that cannot be used."""

    reason_code = "compliance-file-invalid"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Limit(_Strict):
    """A span of time: exactly one of its units."""

    days: Annotated[int, Field(ge=0, le=3660)] | None = None
    business_days: Annotated[int, Field(ge=0, le=260)] | None = None
    hours: Annotated[int, Field(ge=0, le=24 * 366)] | None = None
    months: Annotated[int, Field(ge=1, le=120)] | None = None
    years: Annotated[int, Field(ge=1, le=50)] | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Limit:
        given = [name for name, value in self.model_dump().items() if value is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of days, business_days, hours, months, years "
                f"(found {', '.join(given) or 'none'})"
            )
        return self

    def after(self, start: datetime, calendar: BusinessCalendar) -> datetime:
        """When a limit that started at ``start`` ends."""
        if self.business_days is not None:
            return calendar.deadline(start, self.business_days)
        if self.days is not None:
            return start + timedelta(days=self.days)
        if self.hours is not None:
            return start + timedelta(hours=self.hours)
        if self.months is not None:
            return _add_months(start, self.months)
        assert self.years is not None
        return _add_months(start, 12 * self.years)

    def before(self, end: datetime) -> datetime:
        """The instant this (wall-clock) span before ``end``: where a warning starts."""
        if self.days is not None:
            return end - timedelta(days=self.days)
        if self.hours is not None:
            return end - timedelta(hours=self.hours)
        raise ValueError("a warning is given in days or hours")


def _add_months(start: datetime, months: int) -> datetime:
    """``months`` later, on the same day of the month or the month's last."""
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return start.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("every month has a 28th")


# What a rule not yet confirmed says of itself when its file gives no note.
NOT_CONFIRMED_CAVEAT = (
    "Not yet confirmed against the regulation's text; the plan's counsel settles the wording."
)


class Source(_Strict):
    """Where the obligation comes from, and whether its wording is confirmed."""

    citation: Annotated[str, Field(min_length=3)]
    document: str | None = None
    confirmed: bool
    note: str | None = None

    @property
    def status(self) -> str:
        """``confirmed`` or ``not yet confirmed``, as a report says it."""
        return "confirmed" if self.confirmed else "not yet confirmed"

    @property
    def caveat(self) -> str | None:
        """The caveat a report carries with the rule: the file's note, or for a rule not
        yet confirmed without one, ``NOT_CONFIRMED_CAVEAT``."""
        if self.note:
            return self.note
        return None if self.confirmed else NOT_CONFIRMED_CAVEAT


class Starts(_Strict):
    """The event a deadline counts from, or the latest of several."""

    at: str | None = None
    later_of: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _events(self) -> Starts:
        if (self.at is None) == (self.later_of is None):
            raise ValueError("give one of 'at' (an event) or 'later_of' (events)")
        for name in self.events:
            if name not in EVENTS:
                raise ValueError(f"unknown event '{name}' (known: {', '.join(sorted(EVENTS))})")
        return self

    @property
    def events(self) -> tuple[str, ...]:
        return (self.at,) if self.at is not None else tuple(self.later_of or ())


class Deadline(_Strict):
    starts: Starts
    within: Limit
    at_risk_before: Limit

    @model_validator(mode="after")
    def _warning_in_wall_time(self) -> Deadline:
        if self.at_risk_before.days is None and self.at_risk_before.hours is None:
            raise ValueError("at_risk_before is given in days or hours")
        return self


class Repeat(_Strict):
    every: Limit
    while_: Annotated[str | None, Field(alias="while")] = None
    starts: str | None = Field(default=None, alias="from")
    until: str | None = None
    at_risk_before: Limit | None = None  # the warning before each period's end

    @model_validator(mode="after")
    def _bounds(self) -> Repeat:
        if self.every.business_days is not None:
            raise ValueError("a repeat's 'every' is given in days, hours, months or years")
        if self.at_risk_before is not None and (
            self.at_risk_before.days is None and self.at_risk_before.hours is None
        ):
            raise ValueError("at_risk_before is given in days or hours")
        if (self.while_ is None) == (self.starts is None):
            raise ValueError("give one of 'while' (a condition) or 'from' (an event)")
        if self.while_ is not None and self.while_ not in CONDITIONS:
            raise ValueError(f"unknown condition '{self.while_}'")
        for name in (self.starts, self.until):
            if name is not None and name not in EVENTS:
                raise ValueError(f"unknown event '{name}'")
        return self


class Window(_Strict):
    back: Limit


_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Obligation(_Strict):
    id: Annotated[str, Field(pattern=_ID.pattern, max_length=64)]
    role: Literal["requester", "responder"]
    title: Annotated[str, Field(min_length=3)]
    source: Source
    deadline: Deadline | None = None
    repeats: Repeat | None = None
    window: Window | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Obligation:
        shapes = [n for n in ("deadline", "repeats", "window") if getattr(self, n) is not None]
        if len(shapes) != 1:
            raise ValueError("give exactly one of deadline, repeats, window")
        return self


class _File(_Strict):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    obligations: tuple[Obligation, ...]


@dataclass(frozen=True)
class Assessment:
    obligation: str
    standing: Standing
    due_at: datetime | None
    why: str


@dataclass(frozen=True)
class ObligationSet:
    """The obligations of one file version, by id, on one business calendar."""

    version: str
    by_id: Mapping[str, Obligation]
    calendar: BusinessCalendar

    def __getitem__(self, obligation_id: str) -> Obligation:
        return self.by_id[obligation_id]

    def due(self, obligation_id: str, events: Mapping[str, datetime]) -> datetime | None:
        """When the deadline ``obligation_id`` ends, given when ``events`` happened; None
        until every event it counts from has."""
        deadline = self._deadline(obligation_id)
        happened = [events.get(name) for name in deadline.starts.events]
        if any(at is None for at in happened):
            return None
        started = max(at for at in happened if at is not None)
        return deadline.within.after(started, self.calendar)

    def assess(
        self,
        obligation_id: str,
        events: Mapping[str, datetime],
        *,
        done_at: datetime | None,
        now: datetime,
    ) -> Assessment:
        """Whether the deadline ``obligation_id`` was met, missed, is at risk or pending."""
        deadline = self._deadline(obligation_id)
        due = self.due(obligation_id, events)
        if due is None:
            waiting = [n for n in deadline.starts.events if n not in events]
            return Assessment(
                obligation_id, Standing.NOT_STARTED, None, f"waiting for {', '.join(waiting)}"
            )
        return self.standing(obligation_id, due, done_at=done_at, now=now)

    def standing(
        self, obligation_id: str, due: datetime, *, done_at: datetime | None, now: datetime
    ) -> Assessment:
        """Where a deadline, or a repeat's period, due at ``due`` stands at ``now``, done
        at ``done_at`` (None: not yet): as kept in an obligation row, whose due time was
        fixed when it started."""
        warning = self.warning(obligation_id)
        if done_at is not None:
            if done_at <= due:
                return Assessment(obligation_id, Standing.MET, due, "done in time")
            late = _span(done_at - due)
            return Assessment(obligation_id, Standing.MISSED, due, f"done {late} late")
        if now > due:
            return Assessment(
                obligation_id, Standing.MISSED, due, f"not done, {_span(now - due)} overdue"
            )
        if warning is not None and now >= warning.before(due):
            return Assessment(
                obligation_id, Standing.AT_RISK, due, f"not done, {_span(due - now)} left"
            )
        return Assessment(obligation_id, Standing.PENDING, due, "not done yet")

    def warning(self, obligation_id: str) -> Limit | None:
        """How long before its due time a row of ``obligation_id`` counts as at risk."""
        obligation = self.by_id[obligation_id]
        if obligation.deadline is not None:
            return obligation.deadline.at_risk_before
        return obligation.repeats.at_risk_before if obligation.repeats is not None else None

    def risk_windows(self) -> dict[str, timedelta]:
        """How long before its due time each deadline or period counts as at risk, by id."""
        windows = {}
        due = datetime(2000, 1, 1, tzinfo=UTC)
        for obligation_id in self.by_id:
            warning = self.warning(obligation_id)
            if warning is not None:
                windows[obligation_id] = due - warning.before(due)
        return windows

    def period_end(self, obligation_id: str, started: datetime) -> datetime:
        """When a period of the repeat ``obligation_id`` that started at ``started`` ends:
        the next time must come by then."""
        repeats = self.by_id[obligation_id].repeats
        if repeats is None:
            raise ValueError(f"obligation '{obligation_id}' is not a repeat")
        return repeats.every.after(started, self.calendar)

    def answer(self, received: datetime, answered: datetime | None, now: datetime) -> Assessment:
        """The responder's clock (``ANSWER_WITHIN``) of a request received at ``received``
        and answered at ``answered`` (None: not yet)."""
        return self.assess(ANSWER_WITHIN, {"request_received": received}, done_at=answered, now=now)

    def _deadline(self, obligation_id: str) -> Deadline:
        deadline = self.by_id[obligation_id].deadline
        if deadline is None:
            raise ValueError(f"obligation '{obligation_id}' is not a deadline")
        return deadline


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24} days"
    if hours >= 1:
        return f"{hours} h"
    return f"{max(1, int(delta.total_seconds() // 60))} min"


def load_obligations(text: str | bytes, calendar: BusinessCalendar) -> ObligationSet:
    """The obligations of a file's JSON; ObligationError names the first field at fault."""
    try:
        parsed = _File.model_validate_json(text)
    except ValidationError as exc:
        raise ObligationError(*first_error(exc)) from None
    by_id: dict[str, Obligation] = {}
    for n, obligation in enumerate(parsed.obligations):
        if obligation.id in by_id:
            raise ObligationError(f"obligations.{n}.id", f"'{obligation.id}' is given twice")
        by_id[obligation.id] = obligation
    missing = sorted(REQUIRED - set(by_id))
    if missing:
        raise ObligationError("obligations", f"no obligation {', '.join(missing)}")
    for required in REQUIRED:
        shape = "deadline" if required in (REQUEST_AFTER_ENROLMENT, ANSWER_WITHIN) else "repeats"
        if getattr(by_id[required], shape) is None:
            raise ObligationError(f"obligations[{required}]", f"must be a {shape.rstrip('s')}")
    return ObligationSet(parsed.version, by_id, calendar)


def shipped_obligations(calendar: BusinessCalendar) -> ObligationSet:
    text = files("payerbridge.compliance").joinpath("data/obligations.json").read_text()
    return load_obligations(text, calendar)
