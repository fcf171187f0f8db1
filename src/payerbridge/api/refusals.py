"""Refused calls the edge sees first: a 429 of the client's rate, answered before the
operation runs, is counted among the operation's refused calls (ADR 0045) in a unit of
its own, so that the audit chain shows the guessing the rate stopped."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request

from payerbridge.api.deps import Caller, caller_of
from payerbridge.audit.refusals import CountRefusal, Refusal, count_refusal_alone, refusal_reason
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.errors import RateLimited

__all__ = ["caller_of_counted", "refusal_window"]


def refusal_window(platform: Platform) -> timedelta:
    """The window refused calls are counted in."""
    return timedelta(seconds=platform.settings.audit_refusal_window_seconds)


def caller_of_counted(platform: Platform, request: Request, operation: str) -> Caller:
    """The caller, as ``caller_of``; a 429 of the client's rate is counted first."""
    try:
        return caller_of(request)
    except RateLimited as limited:
        if limited.subject is not None:
            refusal = Refusal(limited.subject, operation, refusal_reason(limited), utcnow())
            command = CountRefusal(refusal, refusal_window(platform))
            # The disclosure room's unit is where refused calls are counted.
            count_refusal_alone(command, platform.units.disclosure())
        raise
