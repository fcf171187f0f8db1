"""The dashboard: the console's first page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from payerbridge.console.auth import PlatformDep, ReaderDep
from payerbridge.console.pages import render

__all__ = ["router"]

router = APIRouter()


@router.get("/")
def dashboard(request: Request, platform: PlatformDep, found: ReaderDep) -> Response:
    counts = platform.exchanges.counts_by_state()
    return render(
        request, found, "dashboard.html", {"counts": sorted(counts.items())}, active="dashboard"
    )
