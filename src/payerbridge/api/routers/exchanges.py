"""The new-payer exchange API: submit an exchange (202 + Location), follow its state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from payerbridge.api.deps import CallerDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.schemas import ExchangeCreate
from payerbridge.exchange.service import submit_exchange
from payerbridge.logging import current_request_id
from payerbridge.store.exchanges import ExchangeRecord
from payerbridge.timestamps import utc_iso
from payerbridge.workflows.exchange import start_exchange

__all__ = ["router"]

router = APIRouter(prefix="/exchanges", default_response_class=JsonResponse, tags=["exchanges"])


def exchange_public(record: ExchangeRecord) -> dict[str, Any]:
    """The exchange as the API shows it: state, outcome, and the ordered history."""
    return {
        "id": record.id,
        "state": record.state.value,
        "old_payer": record.partner_id,
        "created_at": utc_iso(record.created_at),
        "updated_at": utc_iso(record.updated_at),
        "matched_member": record.matched_member_ref,
        "member_identifier": record.member_identifier,
        "imported_patient_id": record.imported_patient_id,
        "resource_count": record.resource_count,
        "error": {"code": record.error_code, "text": record.error_text}
        if record.error_code
        else None,
        "history": [
            {
                "seq": t.seq,
                "from": t.from_state,
                "to": t.to_state,
                "at": utc_iso(t.at),
                "actor": t.actor,
                "reason_code": t.reason_code,
                "detail": t.detail,
            }
            for t in record.transitions
        ],
    }


@router.post("", status_code=202)
def create_exchange(
    body: ExchangeCreate,
    platform: PlatformDep,
    caller: CallerDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    exchange_id = submit_exchange(
        platform.exchange_ports,
        body.to_domain(),
        body.model_dump(mode="json"),
        client_id=caller.client_id,
        request_id=current_request_id(),
    )
    start_exchange(exchange_id)
    response.headers["Location"] = str(request.url_for("get_exchange", exchange_id=exchange_id))
    return exchange_public(platform.exchanges.get(exchange_id))


@router.get("")
def list_exchanges(
    platform: PlatformDep, _caller: CallerDep,
    state: Annotated[ExchangeState | None, Query(description="Only exchanges in this state.")]
    = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0)] = 0,
) -> dict[str, Any]:
    total, ids = platform.exchanges.list_ids(state=state, limit=count, offset=offset)
    return {"total": total, "offset": offset,
            "items": [exchange_public(platform.exchanges.get(i)) for i in ids]}


@router.get("/{exchange_id}", name="get_exchange")
def get_exchange(exchange_id: str, platform: PlatformDep, _caller: CallerDep) -> dict[str, Any]:
    return exchange_public(platform.exchanges.get(exchange_id))
