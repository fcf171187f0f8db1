"""The data lifecycle's use cases (ADR 0038): the purge that applies the retention
classes, legal holds, and the erasure of one member. Each is ``use_case(command, uow)``
on the room's ``ComplianceUnit`` (ADR 0051), runs in a transaction of its own and is
audited in it; the audit records what was removed (tables and counts, ids), never the
PHI itself.

A hold is released only by the principal that placed it or by one the plan names as
counsel (``HoldPolicy``, ADR 0046): the principal is who the edge authenticated (an API
client, the operating-system user of the CLI, a console account), never a name typed
in a form. A refusal changes nothing and is audited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.compliance.lifecycle_rules import HoldPolicy, Retention
from payerbridge.compliance.model import Hold
from payerbridge.compliance.ports import LifecycleStore
from payerbridge.compliance.unit import ComplianceUnit
from payerbridge.errors import Forbidden, InvalidInput, Issue, LegalHoldActive, NotFound
from payerbridge.transactions import UnitOfWork

__all__ = [
    "Acting",
    "EraseMember",
    "HoldPolicy",
    "LifecycleStore",
    "PlaceHold",
    "Purge",
    "Purged",
    "ReleaseHold",
    "Retention",
    "erase_member",
    "place_hold",
    "purge",
    "release_hold",
]

# Our Patient ids are FHIR ids.
_FHIR_ID = re.compile(r"[A-Za-z0-9.\-]{1,64}")
# A reason is for people: kept whole, but bounded.
_MAX_REASON = 500


@dataclass(frozen=True)
class Acting:
    """Who acts on a hold: the ``principal`` the edge authenticated (``api:<client id>``,
    ``cli:<os user>``, ``console:<account>``) and the ``person`` it says acts, where that
    is not the principal itself (an API client names the person; recorded, not trusted)."""

    principal: str
    person: str | None = None

    @property
    def label(self) -> str:
        """What the hold and the audit trail show (at most 200 characters)."""
        if not self.person or self.person == self.principal:
            return self.principal[:200]
        return f"{self.principal} ({self.person})"[:200]


@dataclass(frozen=True)
class PlaceHold:
    member_id: str
    by: Acting
    reason: str  # why, without member data


@dataclass(frozen=True)
class ReleaseHold:
    hold_id: str
    by: Acting


@dataclass(frozen=True)
class EraseMember:
    member_id: str
    by: str  # the label the audit trail shows
    reason: str


@dataclass(frozen=True)
class Purge:
    """The retention classes applied once; at most ``batch`` requests minimised."""

    batch: int = 500


@dataclass(frozen=True)
class Purged:
    """What one purge removed: exchange ids whose raw payload went and whose request
    was minimised, and review cases whose request record went."""

    payloads: tuple[str, ...]
    requests: tuple[str, ...]
    review_requests: tuple[str, ...]
    source_files: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(self.counts().values())

    def counts(self) -> dict[str, int]:
        return {
            "raw_payloads": len(self.payloads),
            "requests_minimised": len(self.requests),
            "review_requests": len(self.review_requests),
            "source_files": len(self.source_files),
        }


def purge(command: Purge, uow: ComplianceUnit) -> Purged:
    """Apply the retention classes once, in one transaction, audited."""
    store, retention = uow.lifecycle, uow.retention
    with uow:
        raw_cutoff = uow.now - retention.raw_payload_grace
        payloads = store.purge_payloads(uow, ended_before=raw_cutoff)
        files = store.purge_source_files(uow, mapped_before=raw_cutoff)
        cutoff = uow.now - retention.request_grace
        requests = store.minimise_requests(uow, ended_before=cutoff, limit=command.batch)
        reviews = store.forget_review_requests(uow, decided_before=cutoff)
        purged = Purged(tuple(payloads), tuple(requests), tuple(reviews), tuple(files))
        if purged:
            uow.record(
                AuditEvent(
                    at=uow.now,
                    actor="system:lifecycle",
                    action="lifecycle.purge",
                    entity_type="Retention",
                    entity_id="purge",
                    outcome="success",
                    detail={
                        "raw_payloads": list(purged.payloads),
                        "requests_minimised": list(purged.requests),
                        "review_requests": list(purged.review_requests),
                        "source_files": list(purged.source_files),
                    },
                )
            )
        return purged


def place_hold(command: PlaceHold, uow: ComplianceUnit) -> Hold:
    by, reason = command.by, _reason(command.reason)
    with uow:
        hold = Hold(
            uow.new_id(),
            _member(command.member_id),
            reason,
            by.label,
            uow.now,
            placed_by_principal=by.principal,
        )
        uow.lifecycle.add_hold(uow, hold)
        uow.record(_event(uow, "member.hold", by.label, hold.member_id, {"hold": hold.id}))
        return hold


def release_hold(command: ReleaseHold, uow: ComplianceUnit) -> Hold:
    """Release the hold when ``command.by``'s principal placed it or is counsel;
    otherwise Forbidden saying who may, nothing changed, the refusal audited."""
    hold_id, by, policy, store = command.hold_id, command.by, uow.holds, uow.lifecycle
    with uow:
        hold = store.hold(uow, hold_id)
        if hold is None:
            raise NotFound(f"legal hold {hold_id[:64]} does not exist")
        if policy.may_release(hold, by.principal):
            released = store.release_hold(uow, hold_id, by=by.label)
            placer = hold.placed_by_principal == by.principal
            detail = {"hold": hold.id, "as": "placer" if placer else "counsel"}
            uow.record(_event(uow, "member.hold-release", by.label, hold.member_id, detail))
            return released
    with uow:
        refused = _event(uow, "member.hold-release", by.label, hold.member_id, {"hold": hold.id})
        uow.record(dataclasses.replace(refused, outcome="failure"))
    text = (
        f"legal hold {hold.id} may be released only by {policy.who_may_release(hold)}; "
        f"you act as {by.principal}: ask one of them"
    )
    raise Forbidden(text, issues=[Issue(text, "hold", "forbidden")])


def erase_member(command: EraseMember, uow: ComplianceUnit) -> Mapping[str, int]:
    """Remove the member's PHI from every table, unless a hold stands (LegalHoldActive,
    nothing changed). The audit event names the tables and counts, not what they held."""
    member_id, reason, store = _member(command.member_id), _reason(command.reason), uow.lifecycle
    with uow:
        standing = [hold for hold in store.holds(uow, member_id) if hold.released_at is None]
        if standing:
            raise LegalHoldActive(
                f"member {member_id} is under legal hold ({', '.join(h.id for h in standing)}); "
                "nothing was erased: a hold must be released by whoever may before erasure"
            )
        removed = store.erase_member(uow, member_id)
        if not any(removed.values()):
            raise NotFound(f"no data of member {member_id} is held here; nothing was erased")
        detail = {"removed": {t: n for t, n in sorted(removed.items()) if n}, "reason": reason}
        uow.record(_event(uow, "member.erase", command.by, member_id, detail))
    store.compact(table for table, count in removed.items() if count)
    return removed


def _event(
    unit: UnitOfWork, action: str, by: str, member_id: str, detail: dict[str, Any]
) -> AuditEvent:
    return AuditEvent(
        at=unit.now,
        actor=by,
        action=action,
        entity_type="Patient",
        entity_id=member_id,
        outcome="success",
        detail=detail,
    )


def _member(member_id: str) -> str:
    member_id = member_id.strip()
    if not _FHIR_ID.fullmatch(member_id):
        raise InvalidInput("a member id is our Patient id: 1 to 64 letters, digits, '-' and '.'")
    return member_id


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a reason is required: say why, without member data")
    if len(reason) > _MAX_REASON:
        raise InvalidInput(f"a reason is at most {_MAX_REASON} characters")
    return reason
