"""``GET /metrics``: the Prometheus exposition (ADR 0032), for operators.

A scraper on a private network is better served by the listener of its own
(``PAYERBRIDGE_METRICS_PORT``), which needs no token; this route answers the same behind
the operator scope. ``name[]`` (repeated) limits the answer to those series, as
prometheus-client's own handler does; any other parameter is refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import StringConstraints

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.errors import InvalidInput, Issue

__all__ = ["router"]

router = APIRouter(tags=["operators"])

# The series this exposition has: ours, and the process collector's.
SeriesName = Annotated[
    str, StringConstraints(pattern=r"^(payerbridge|process)_[a-zA-Z0-9_]{1,190}$")
]


def _only_series(request: Request) -> None:
    """InvalidInput naming each parameter other than ``name[]``."""
    issues = [
        Issue(f"'{key[:40]}' is not a parameter of /metrics; use name[]", key[:40], "not-supported")
        for key in request.query_params
        if key != "name[]"
    ]
    if issues:
        raise InvalidInput("the request's parameters are not those of /metrics", issues=issues)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
def metrics(
    request: Request,
    platform: PlatformDep,
    _operator: OperatorDep,
    names: Annotated[
        list[SeriesName] | None,
        Query(alias="name[]", description="Only these series (repeatable): payerbridge_exchanges"),
    ] = None,
) -> Response:
    """This process's counters (every process's on the host in multiprocess mode) and
    the database's shared state, in Prometheus's text format (OpenMetrics when asked)."""
    _only_series(request)
    body, media_type = platform.metrics.render(request.headers.get("accept"), names or [])
    return Response(content=body, media_type=media_type)
