"""The dashboard's use case: the key signals over a period, read through the port and
placed on one window (exchanges by the state they are in, our match outcomes, the review
backlog, dead letters), with the figures of now beside them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from payerbridge.exchange.model import ExchangeState as S
from payerbridge.identity.matching.model import MatchOutcome
from payerbridge.oversight.model import Chart, Period, backlog_over, series_of, window_for
from payerbridge.oversight.ports import Oversight

__all__ = ["Dashboard", "STATE_ORDER", "build_dashboard"]

# States from the happy end to the stopped ones, so that a chart's colours read alike.
STATE_ORDER = tuple(
    s.value
    for s in (
        *(S.COMPLETED, S.PARTIAL, S.CONFLICT, S.MANUAL_REVIEW, S.BLOCKED, S.FAILED),
        *(S.DEAD_LETTERED, S.SUBMITTED, S.VALIDATED, S.CONSENT_VERIFIED, S.ROUTE_SELECTED),
        *(S.MEMBER_MATCHED, S.RETRIEVING, S.RECEIVED, S.NORMALIZED),
    )
)
_OUTCOME_ORDER = tuple(outcome.value for outcome in MatchOutcome)


@dataclass(frozen=True)
class Dashboard:
    period: Period
    charts: tuple[Chart, ...]
    states_now: Mapping[str, int]  # every exchange by the state it is in
    open_reviews: int
    oldest_review_age: timedelta | None


def build_dashboard(
    oversight: Oversight, states_now: Mapping[str, int], period: Period, now: datetime
) -> Dashboard:
    window = window_for(period, now)
    since, grain = window.since, window.grain
    open_now, oldest = oversight.open_reviews()
    charts = (
        Chart(
            "Exchanges created, by the state they are in",
            window,
            series_of(oversight.exchanges_created(since, grain), window, order=STATE_ORDER),
        ),
        Chart(
            "Member-match decisions (as the old payer), by outcome",
            window,
            series_of(oversight.match_outcomes(since, grain), window, order=_OUTCOME_ORDER),
        ),
        Chart(
            "Identity review cases open",
            window,
            (
                backlog_over(
                    window,
                    open_now,
                    oversight.reviews_opened(since, grain),
                    oversight.reviews_closed(since, grain),
                ),
            ),
            stacked=False,
            note="at the end of each bucket",
        ),
        Chart(
            "Exchanges dead-lettered, by reason",
            window,
            series_of(oversight.dead_letters(since, grain), window),
        ),
    )
    return Dashboard(
        period=period,
        charts=charts,
        states_now=dict(sorted(states_now.items(), key=lambda kv: _rank(kv[0]))),
        open_reviews=open_now,
        oldest_review_age=now - oldest if oldest is not None else None,
    )


def _rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)
