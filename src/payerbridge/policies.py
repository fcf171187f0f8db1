"""The policies a deployment's settings make: retries and budgets, where outbound calls
may go, how large a partner's answer may be, each operation's rate per client, what a
regular consent withholds, how long a console session lives. Built
once by ``bootstrap``; the rooms receive the policy, never the settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from payerbridge import __version__
from payerbridge.compliance.calendar import FileFieldError, load_calendar, shipped_calendar
from payerbridge.compliance.obligations import ObligationSet, load_obligations, shipped_obligations
from payerbridge.compliance.report import PlanIdentity
from payerbridge.config import GUESSING_RATES, OperationRate, Settings
from payerbridge.consent.categories import SHIPPED_CODE_SETS, CodeSetError, extended
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.scope import PAYER_TO_PAYER, DataScope, load_scope
from payerbridge.errors import ComplianceFileError, InvalidInput, Issue
from payerbridge.exchange.model import RetryPolicy
from payerbridge.net.addresses import AddressPolicy
from payerbridge.partners.answers import ResponseCaps
from payerbridge.security.limits import RatePolicy
from payerbridge.security.model import Rate
from payerbridge.security.operators import SessionPolicy

__all__ = [
    "compliance_obligations",
    "compliance_plan",
    "data_scope",
    "egress_policy",
    "rate_policy",
    "response_caps",
    "retry_policy",
    "segmentation_policy",
    "session_policy",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_delay_seconds=settings.retry_base_delay_seconds,
        max_delay_seconds=settings.retry_max_delay_seconds,
        longest_delay_seconds=settings.retry_longest_delay_seconds,
        step_budget_seconds=settings.step_budget_seconds,
        exchange_budget_seconds=settings.exchange_budget_seconds,
        call_timeout_seconds=settings.partner_timeout_seconds,
        breaker_failure_threshold=settings.breaker_failure_threshold,
        breaker_cooldown_seconds=settings.breaker_cooldown_seconds,
        review_poll_seconds=settings.partner_review_poll_seconds,
        review_wait_seconds=settings.partner_review_wait_hours * 3600,
    )


def egress_policy(settings: Settings) -> AddressPolicy:
    """Where outbound calls may connect: public addresses and the listed networks."""
    if settings.webhook_allowed_hosts:
        logger.warning(
            "PAYERBRIDGE_WEBHOOK_ALLOWED_HOSTS is ignored: list networks in "
            "PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS instead"
        )
    return AddressPolicy.allowing(settings.egress_allowed_networks or ())


def response_caps(settings: Settings) -> ResponseCaps:
    return ResponseCaps(
        answer=settings.partner_max_answer_bytes,
        record=settings.partner_max_record_bytes,
        file=settings.partner_max_file_bytes,
        document=settings.partner_max_document_bytes,
    )


def rate_policy(settings: Settings) -> RatePolicy:
    """The rate of each operation per client (ADR 0025): the guessing operations' own,
    those configured, and the default for the rest."""

    def rate(per_second: float, burst: int) -> Rate | None:
        return Rate(per_second, burst) if per_second > 0 else None

    def of(limit: OperationRate) -> Rate | None:
        return rate(limit.per_minute / 60, limit.burst)

    operations = {**GUESSING_RATES, **settings.rate_limits}
    return RatePolicy(
        default=rate(settings.rate_limit_per_second, settings.rate_limit_burst),
        operations={operation: of(limit) for operation, limit in operations.items()},
    )


def session_policy(settings: Settings) -> SessionPolicy:
    """How long a console session lives (ADR 0035)."""
    return SessionPolicy(
        idle=timedelta(seconds=settings.console_idle_seconds),
        absolute=timedelta(seconds=settings.console_session_seconds),
    )


def segmentation_policy(settings: Settings) -> SegmentationPolicy:
    """What a regular consent withholds here: the shipped code sets and the operator's
    additions (PAYERBRIDGE_SENSITIVE_CODE_SETS)."""
    path = settings.sensitive_code_sets
    if path is None:
        return SegmentationPolicy()
    try:
        document = json.loads(path.read_text())
        return SegmentationPolicy(code_sets=extended(SHIPPED_CODE_SETS, document))
    except (OSError, ValueError, CodeSetError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInput(
            f"PAYERBRIDGE_SENSITIVE_CODE_SETS ({path}) cannot be used: {exc}",
            issues=[Issue(str(exc), "sensitive_code_sets")],
        ) from exc


def compliance_obligations(settings: Settings) -> ObligationSet:
    """The rule's clocks on the plan's business calendar (ADR 0037): the shipped files, or
    the operator's. A file that cannot be used stops start-up, naming its field."""
    calendar = _configured(
        "PAYERBRIDGE_BUSINESS_CALENDAR", settings.business_calendar, shipped_calendar, load_calendar
    )
    return _configured(
        "PAYERBRIDGE_OBLIGATIONS_FILE",
        settings.obligations_file,
        lambda: shipped_obligations(calendar),
        lambda text: load_obligations(text, calendar),
    )


def compliance_plan(settings: Settings) -> PlanIdentity:
    """Who a compliance report is of: the plan's organization and NPI, the deployment's
    base URL, and this software's version."""
    return PlanIdentity(settings.org_name, settings.org_npi, settings.base_url, __version__)


def data_scope(settings: Settings) -> DataScope:
    """What the payer-to-payer rule lets leave (ADR 0042): the shipped file, or the
    operator's. A file that cannot be used stops start-up, naming its field."""
    return _configured(
        "PAYERBRIDGE_SCOPE_FILE", settings.scope_file, lambda: PAYER_TO_PAYER, load_scope
    )


def _configured(
    variable: str, path: Path | None, shipped: Callable[[], _T], load: Callable[[str], _T]
) -> _T:
    if path is None:
        return shipped()
    try:
        return load(path.read_text())
    except OSError as exc:
        raise ComplianceFileError(
            f"{variable} ({path}) cannot be read: {exc.strerror or exc}",
            issues=[Issue(f"{path} cannot be read", variable)],
        ) from exc
    except FileFieldError as exc:
        raise ComplianceFileError(
            f"{variable} ({path}) cannot be used: {exc.text}",
            issues=[Issue(exc.text, exc.field or variable)],
        ) from exc
