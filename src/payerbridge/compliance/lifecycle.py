"""The data lifecycle's use cases (ADR 0038): the purge that applies the retention
classes, legal holds, and the erasure of one member. Each runs in a unit of work of its
own and is audited in it; the audit records what was removed (tables and counts, ids),
never the PHI itself.

A hold is released only by the principal that placed it or by one the plan names as
counsel (``HoldPolicy``, ADR 0046): the principal is who the edge authenticated (an API
client, the operating-system user of the CLI, a console account), never a name typed
in a form. A refusal changes nothing and is audited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.compliance.model import Hold
from payerbridge.errors import Forbidden, InvalidInput, Issue, LegalHoldActive, NotFound
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = [
    "Acting",
    "HoldPolicy",
    "LifecycleStore",
    "Purged",
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
class HoldPolicy:
    """Who may release a hold: the principal that placed it, or one of ``counsel``
    (the plan's ``PAYERBRIDGE_HOLD_COUNSEL``)."""

    counsel: frozenset[str] = frozenset()

    def may_release(self, hold: Hold, principal: str) -> bool:
        return principal in self.counsel or (
            hold.placed_by_principal is not None and hold.placed_by_principal == principal
        )

    def who_may_release(self, hold: Hold) -> str:
        placer = hold.placed_by_principal
        counsel = ", ".join(sorted(self.counsel)) or "none is named: PAYERBRIDGE_HOLD_COUNSEL"
        if placer is None:
            return f"counsel ({counsel}); it was placed before holds named their principal"
        return f"the principal that placed it ({placer}) or counsel ({counsel})"


@dataclass(frozen=True)
class Retention:
    """How long what the purge acts on is kept after its work ended."""

    raw_payload_grace: timedelta
    request_grace: timedelta


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


class LifecycleStore(Protocol):
    def holds(self, unit: UnitOfWork, member_id: str) -> list[Hold]:
        """Every hold on ``member_id``, released ones too, oldest first."""
        ...

    def hold(self, unit: UnitOfWork, hold_id: str) -> Hold | None: ...

    def add_hold(self, unit: UnitOfWork, hold: Hold) -> None: ...

    def release_hold(self, unit: UnitOfWork, hold_id: str, *, by: str) -> Hold:
        """The hold ``hold_id`` released now (NotFound, or Conflict if it already was)."""
        ...

    def purge_payloads(self, unit: UnitOfWork, *, ended_before: datetime) -> list[str]:
        """Drop the raw payloads of exchanges whose data was stored (or that failed)
        before ``ended_before``; the exchange ids."""
        ...

    def minimise_requests(
        self, unit: UnitOfWork, *, ended_before: datetime, limit: int
    ) -> list[str]:
        """Cut the requests of exchanges that ended before ``ended_before`` to what the
        audit needs; the exchange ids (at most ``limit``)."""
        ...

    def forget_review_requests(self, unit: UnitOfWork, *, decided_before: datetime) -> list[str]:
        """Drop the request records of review cases decided before ``decided_before``."""
        ...

    def purge_source_files(self, unit: UnitOfWork, *, mapped_before: datetime) -> list[str]:
        """Drop the bodies of backend files last mapped before ``mapped_before`` (their
        digests and reports stay); the file ids."""
        ...

    def erase_member(self, unit: UnitOfWork, member_id: str) -> dict[str, int]:
        """Remove ``member_id``'s PHI from every table: rows removed or cut, by table."""
        ...

    def compact(self, tables: Iterable[str]) -> None:
        """After an erasure committed: let no copy of what was removed from ``tables``
        stay in the database's files (SQLite's write-ahead log; PostgreSQL's dead rows)."""
        ...


def purge(
    transactions: Transactions,
    store: LifecycleStore,
    retention: Retention,
    *,
    batch: int = 500,
) -> Purged:
    """Apply the retention classes once, in one unit of work, audited."""
    with transactions.begin() as unit:
        raw_cutoff = unit.now - retention.raw_payload_grace
        payloads = store.purge_payloads(unit, ended_before=raw_cutoff)
        files = store.purge_source_files(unit, mapped_before=raw_cutoff)
        cutoff = unit.now - retention.request_grace
        requests = store.minimise_requests(unit, ended_before=cutoff, limit=batch)
        reviews = store.forget_review_requests(unit, decided_before=cutoff)
        purged = Purged(tuple(payloads), tuple(requests), tuple(reviews), tuple(files))
        if purged:
            unit.record(
                AuditEvent(
                    at=unit.now,
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


def place_hold(
    transactions: Transactions, store: LifecycleStore, member_id: str, *, by: Acting, reason: str
) -> Hold:
    reason = _reason(reason)
    with transactions.begin() as unit:
        hold = Hold(
            unit.new_id(),
            _member(member_id),
            reason,
            by.label,
            unit.now,
            placed_by_principal=by.principal,
        )
        store.add_hold(unit, hold)
        unit.record(_event(unit, "member.hold", by.label, hold.member_id, {"hold": hold.id}))
        return hold


def release_hold(
    transactions: Transactions,
    store: LifecycleStore,
    hold_id: str,
    *,
    by: Acting,
    policy: HoldPolicy,
) -> Hold:
    """Release ``hold_id`` when ``by``'s principal placed it or is counsel; otherwise
    Forbidden saying who may, nothing changed, the refusal audited."""
    with transactions.begin() as unit:
        hold = store.hold(unit, hold_id)
        if hold is None:
            raise NotFound(f"legal hold {hold_id[:64]} does not exist")
        if policy.may_release(hold, by.principal):
            released = store.release_hold(unit, hold_id, by=by.label)
            placer = hold.placed_by_principal == by.principal
            detail = {"hold": hold.id, "as": "placer" if placer else "counsel"}
            unit.record(_event(unit, "member.hold-release", by.label, hold.member_id, detail))
            return released
    with transactions.begin() as unit:
        refused = _event(unit, "member.hold-release", by.label, hold.member_id, {"hold": hold.id})
        unit.record(dataclasses.replace(refused, outcome="failure"))
    text = (
        f"legal hold {hold.id} may be released only by {policy.who_may_release(hold)}; "
        f"you act as {by.principal}: ask one of them"
    )
    raise Forbidden(text, issues=[Issue(text, "hold", "forbidden")])


def erase_member(
    transactions: Transactions, store: LifecycleStore, member_id: str, *, by: str, reason: str
) -> Mapping[str, int]:
    """Remove ``member_id``'s PHI from every table, unless a hold stands (LegalHoldActive,
    nothing changed). The audit event names the tables and counts, not what they held."""
    member_id, reason = _member(member_id), _reason(reason)
    with transactions.begin() as unit:
        standing = [hold for hold in store.holds(unit, member_id) if hold.released_at is None]
        if standing:
            raise LegalHoldActive(
                f"member {member_id} is under legal hold ({', '.join(h.id for h in standing)}); "
                "nothing was erased: a hold must be released by whoever may before erasure"
            )
        removed = store.erase_member(unit, member_id)
        if not any(removed.values()):
            raise NotFound(f"no data of member {member_id} is held here; nothing was erased")
        detail = {"removed": {t: n for t, n in sorted(removed.items()) if n}, "reason": reason}
        unit.record(_event(unit, "member.erase", by, member_id, detail))
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
