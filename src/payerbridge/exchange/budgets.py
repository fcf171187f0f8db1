"""How long an exchange keeps trying its old payer: its deadline (pure, given the uow).

Until its deadline an exchange waits out a partner that is down, unreachable, in
maintenance or behind its open breaker; past it, it is dead-lettered
(``deadline-exceeded``). The deadline is set when the exchange is submitted, and again
when an operator replays it or the old payer's reviewer decides; the first of these
that is set gives it:

1. the partner's own time budget (``exchange_budget_seconds`` in its operations, which
   an operator sets with ``PUT /partners/{id}/operations`` or ``payerbridge partners
   operations --exchange-budget``);
2. the platform's (``PAYERBRIDGE_EXCHANGE_BUDGET_SECONDS``);
3. the rule's clocks (ADR 0037): the later of our own duty to ask
   (``request-after-enrolment``: a week from the later of coverage start and opt-in) and
   the old payer's duty to answer a request made now (``answer-within-one-business-day``,
   on the plan's calendar). An exchange keeps trying while either clock can still be
   met, and for at least the business day the old payer has to answer;
4. without obligations (uow built for a test), a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner

__all__ = ["FALLBACK_BUDGET", "exchange_deadline"]

FALLBACK_BUDGET = timedelta(days=1)


def exchange_deadline(
    uow: ExchangeUnit,
    partner: Partner | None,
    now: datetime,
    *,
    events: Mapping[str, datetime] | None = None,
) -> datetime:
    """The deadline of an exchange with ``partner`` (re)started at ``now``; ``events``:
    what the rule's request clock counts from (``opt_in``, ``coverage_start``), when
    known (a submission)."""
    if partner is not None and partner.operations.exchange_budget_seconds is not None:
        return now + timedelta(seconds=partner.operations.exchange_budget_seconds)
    budget = uow.retry_policy.exchange_budget_seconds
    if budget is not None:
        return now + timedelta(seconds=budget)
    if uow.clocks is None:
        return now + FALLBACK_BUDGET
    obligations = uow.clocks.obligations
    dues = [obligations.due(ANSWER_WITHIN, {"request_received": now})]
    if events:
        dues.append(obligations.due(REQUEST_AFTER_ENROLMENT, events))
    known = [due for due in dues if due is not None]
    return max(known) if known else now + FALLBACK_BUDGET
