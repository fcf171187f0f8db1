"""The dashboard: the key signals over the last day, week or month as charts, and the
figures of now (exchanges by state, the review backlog and its oldest case, how far the
audit chain's last signed checkpoint is behind its head, partners by health and those
not up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from payerbridge.console.auth import PlatformDep, ReaderDep
from payerbridge.console.charts import chart_svg, legend_html
from payerbridge.console.health import health_summary
from payerbridge.console.pages import render
from payerbridge.oversight.dashboard import build_dashboard
from payerbridge.oversight.model import Period

__all__ = ["router"]

router = APIRouter()


@router.get("/")
def dashboard(
    request: Request,
    platform: PlatformDep,
    found: ReaderDep,
    period: Annotated[Period, Query(description="24h, 7d or 30d")] = Period.DAY,
) -> Response:
    uow = platform.units.oversight()
    now = uow.clock()
    board = build_dashboard(uow.oversight, uow.exchanges.counts_by_state(), period, now)
    head_seq, _ = uow.chain.head()
    last = uow.chain.last_checkpoint()
    checkpoint = last.checkpoint if last is not None else None
    return render(
        request,
        found,
        "dashboard.html",
        {
            "board": board,
            "periods": list(Period),
            "charts": [(c, chart_svg(c), legend_html(c.series)) for c in board.charts],
            "head_seq": head_seq,
            "checkpoint": checkpoint,
            "unsigned": head_seq - (checkpoint.seq if checkpoint else 0),
            "now": now,
            "partner_health": health_summary(platform, now),
        },
    )
