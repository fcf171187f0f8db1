"""The quarantine for operators (ADR 0030): what a source produced that failed a profile
it claims, with the reasons; never sent. Lists carry no resource bodies; one held
resource's page does."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from payerbridge.api.deps import OperatorDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import SourcesUnitDep
from payerbridge.backends.model import QuarantinedResource, QuarantineId, SourceId
from payerbridge.errors import InvalidInput, Issue
from payerbridge.timestamps import utc_iso

__all__ = ["router", "quarantined_public"]

router = APIRouter(prefix="/quarantine", default_response_class=JsonResponse, tags=["quarantine"])


def quarantined_public(held: QuarantinedResource) -> dict[str, Any]:
    """A held resource as operators see it: ids, source, mapping, the profiles it claims
    and the issues (their texts carry no values); the body only when ``held`` has it."""
    shown: dict[str, Any] = {
        "id": held.id,
        "seq": held.seq,
        "source": held.source_id,
        "mapping": {"id": held.mapping_id, "version": held.mapping_version}
        if held.mapping_id
        else None,
        "resource_type": held.resource_type,
        "resource_id": held.resource_id,
        "profiles": list(held.profiles),
        "issues": [issue.to_json() for issue in held.issues],
        "held_at": utc_iso(held.held_at),
    }
    if held.resource is not None:
        shown["resource"] = held.resource
    return shown


@router.get("")
def list_quarantine(
    request: Request,
    uow: SourcesUnitDep,
    _operator: OperatorDep,
    source: Annotated[str | None, Query(max_length=200, description="Only this source's.")] = None,
    after: Annotated[
        str | None,
        # A seq is a 64-bit integer, written in digits: "0.0", or a cursor past 2**63 - 1,
        # is refused, not coerced or sent to the database to overflow there.
        Query(pattern=r"^[0-9]{1,19}$", description="Only those held after this one (its seq)."),
    ] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Operators only: held resources in the order held, ``_count`` at a time; ``next``
    is the following page's URL while there are more."""
    _given_once(request)
    cursor = int(after) if after is not None else None
    if cursor is not None and cursor > 2**63 - 1:
        raise InvalidInput("after is past the largest seq", issues=[Issue("too large", "after")])
    by = SourceId(source) if source is not None else None
    items = uow.quarantine.list(source=by, after=cursor, limit=count + 1)
    following = None
    if len(items) > count:
        items = items[:count]
        following = str(request.url.include_query_params(after=items[-1].seq))
    return {
        "total": uow.quarantine.count(source=by),
        "count": len(items),
        "items": [quarantined_public(item) for item in items],
        "next": following,
    }


def _given_once(request: Request) -> None:
    """A parameter given twice is refused, never one of its values silently taken."""
    params = request.query_params
    repeated = sorted({name[:40] for name in params if len(params.getlist(name)) > 1})
    if repeated:
        text = f"each parameter may be given once ({', '.join(repeated)})"
        raise InvalidInput(text, issues=[Issue(text, repeated[0], "invalid")])


@router.get("/{quarantine_id}")
def get_quarantined(
    quarantine_id: str, uow: SourcesUnitDep, _operator: OperatorDep
) -> dict[str, Any]:
    """Operators only: one held resource, with its body."""
    return quarantined_public(uow.quarantine.get(QuarantineId(quarantine_id[:64])))
