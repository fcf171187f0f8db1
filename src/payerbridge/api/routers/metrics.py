"""``GET /metrics``: the Prometheus exposition (ADR 0032), for operators.

A scraper on a private network is better served by the listener of its own
(``PAYERBRIDGE_METRICS_PORT``), which needs no token; this route answers the same behind
the operator scope. ``name[]`` (repeated) limits the answer to those series, as
prometheus-client's own handler does; any other parameter is refused.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.errors import InvalidInput, Issue

__all__ = ["router"]

router = APIRouter(tags=["operators"])

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")


def _series(request: Request) -> list[str]:
    """The ``name[]`` values asked for; InvalidInput naming any other parameter or a
    value that is not a metric name."""
    issues = [
        Issue(f"'{key[:40]}' is not a parameter of /metrics; use name[]", key[:40], "not-supported")
        for key in request.query_params
        if key != "name[]"
    ]
    names = request.query_params.getlist("name[]")
    issues += [
        Issue(f"name[] '{name[:40]}' is not a metric name", "name[]", "value")
        for name in names
        if not _NAME.match(name)
    ]
    if issues:
        raise InvalidInput("the request's parameters are not those of /metrics", issues=issues)
    return names


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
def metrics(request: Request, platform: PlatformDep, _operator: OperatorDep) -> Response:
    """This process's counters (every process's on the host in multiprocess mode) and
    the database's shared state, in Prometheus's text format (OpenMetrics when asked)."""
    body, media_type = platform.metrics.render(request.headers.get("accept"), _series(request))
    return Response(content=body, media_type=media_type)
