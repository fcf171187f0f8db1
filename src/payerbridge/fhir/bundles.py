"""Search answers as FHIR Bundles (``searchset``), for the routes that answer with whole
resources they already hold."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from payerbridge.timestamps import utc_iso

__all__ = ["searchset"]


def searchset(
    resources: Sequence[dict[str, Any]],
    *,
    fhir_base: str,
    at: datetime,
    self_url: str | None = None,
) -> dict[str, Any]:
    """Every resource a match; ``self_url``, when given, as the Bundle's self link."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(at),
        "total": len(resources),
    }
    if self_url is not None:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    bundle["entry"] = [
        {
            "fullUrl": f"{fhir_base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return bundle
