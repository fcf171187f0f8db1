"""What directory imports hold for an operator (``routing.directory_import``), kept in
the database; written in the caller's unit of work, which the use case audits."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, select, update

from payerbridge.routing.ports import (
    DirectoryOrganization,
    PartnerProposal,
    ProposalDecision,
    ProposalStatus,
)
from payerbridge.store.tables import partner_proposals
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlPartnerProposals"]

_T = partner_proposals
_NEWEST = (_T.c.created_at.desc(), _T.c.id.desc())


def _proposal(row: Any) -> PartnerProposal:
    return PartnerProposal(
        id=row.id,
        directory=row.directory,
        organization=DirectoryOrganization.from_json(orjson.loads(row.organization)),
        reasons=tuple(orjson.loads(row.reasons)),
        based_on=row.based_on,
        created_at=row.created_at,
        created_by=row.created_by,
        status=ProposalStatus(row.status),
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        note=row.note,
    )


class SqlPartnerProposals:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def add(self, unit: UnitOfWork, proposal: PartnerProposal) -> None:
        organization = proposal.organization
        sql_unit(unit).connection.execute(
            _T.insert().values(
                id=proposal.id,
                partner_id=organization.partner_id,
                directory=proposal.directory,
                status=proposal.status.value,
                organization=orjson.dumps(organization.to_json()).decode(),
                fingerprint=organization.fingerprint,
                reasons=orjson.dumps(list(proposal.reasons)).decode(),
                based_on=proposal.based_on,
                created_at=proposal.created_at,
                created_by=proposal.created_by[:200],
            )
        )

    def get(self, proposal_id: str) -> PartnerProposal | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(_T).where(_T.c.id == proposal_id)).first()
        return _proposal(row) if row is not None else None

    def list(self, status: ProposalStatus | None = None) -> list[PartnerProposal]:
        query = select(_T).order_by(*_NEWEST)
        if status is not None:
            query = query.where(_T.c.status == status.value)
        with self._reader.connect() as connection:
            return [_proposal(row) for row in connection.execute(query.limit(1000))]

    def latest(self, partner_id: str, directory: str) -> PartnerProposal | None:
        query = (
            select(_T)
            .where(_T.c.partner_id == partner_id, _T.c.directory == directory)
            .order_by(*_NEWEST)
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return _proposal(row) if row is not None else None

    def decide(self, unit: UnitOfWork, proposal_id: str, decision: ProposalDecision) -> bool:
        """Settle the proposal if it is pending, in ``unit``; whether it was."""
        done = sql_unit(unit).connection.execute(
            update(_T)
            .where(_T.c.id == proposal_id, _T.c.status == ProposalStatus.PENDING.value)
            .values(
                status=decision.status.value,
                decided_at=unit.now,
                decided_by=decision.by[:200],
                note=decision.note,
            )
        )
        return bool(done.rowcount)
