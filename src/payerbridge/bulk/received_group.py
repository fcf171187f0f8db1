"""The Group of the plan's own members it holds received records for (issue 70,
ADR 0052): ``Group/received``, read and exported by the plan's own organization only.

Its members are those an exchange's answer or an onboarding's chunk left records for,
as the store holds them when it is read. It is the plan's own business: to anyone else
it does not exist (404, as an unknown Group), so which members a plan received records
for is never told to another payer. Its export is the plan's own whole record, labelled,
as ``Patient/$export`` by the plan is (each member decided again when the job reaches
her)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.bulk.access import require_whole_client
from payerbridge.bulk.export import GroupExportAsked, accept_members, members_named
from payerbridge.bulk.model import BulkJob, JobKind
from payerbridge.bulk.unit import BulkUnit
from payerbridge.consent.model import Requester, is_own_organization
from payerbridge.errors import NotFound
from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.routing.model import Organization
from payerbridge.security.model import Principal, require_scope, resource_scope
from payerbridge.timestamps import utc_iso
from payerbridge.types import MemberId

__all__ = [
    "RECEIVED_GROUP_ID",
    "accept_received_export",
    "read_received_group",
    "received_group",
]

RECEIVED_GROUP_ID = "received"


def received_group(
    members: list[MemberId], plan: Organization, *, updated: datetime
) -> dict[str, Any]:
    """The Group as FHIR R4 has one: actual persons, managed by the plan. Pure."""
    return {
        "resourceType": "Group",
        "id": RECEIVED_GROUP_ID,
        "meta": {"lastUpdated": utc_iso(updated)},
        "active": True,
        "type": "person",
        "actual": True,
        "name": "Members the plan holds received records for",
        "quantity": len(members),
        "managingEntity": {
            "identifier": {"system": NPI_SYSTEM, "value": plan.npi},
            "display": plan.name,
        },
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }


def read_received_group(principal: Principal, uow: BulkUnit) -> dict[str, Any]:
    """The Group as the store holds it now, for the plan's own organization; its read is
    audited (ids and counts, purpose HOPERAT)."""
    require_whole_client(principal)
    require_scope(principal, resource_scope("Group", "r"))
    _require_own(Requester(principal.client_id, principal.npi), uow)
    now = uow.clock()
    group = received_group(uow.members.received_members(), uow.rules.us, updated=now)
    with uow:
        detail = {"purpose": "HOPERAT", "basis": "own-organization", "members": group["quantity"]}
        uow.record(
            AuditEvent(
                now,
                principal.client_id,
                "received.read",
                "Group",
                RECEIVED_GROUP_ID,
                "success",
                detail=detail,
            )
        )
    return group


def accept_received_export(command: GroupExportAsked, uow: BulkUnit) -> BulkJob:
    """Record the export of the Group (or of the ``patient`` members it holds that the
    request names); the caller enqueues its workflow."""
    asked = command.asked
    _require_own(asked.requester, uow)
    held = uow.members.received_members()
    members = members_named(held, asked.request.patients, command.group_id)
    return accept_members(uow, JobKind.GROUP_EXPORT, members, asked, uow.clock())


def _require_own(requester: Requester, uow: BulkUnit) -> None:
    if not is_own_organization(requester, uow.rules.us.npi):
        raise NotFound(f"Group/{RECEIVED_GROUP_ID} does not exist")
