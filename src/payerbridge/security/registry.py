"""The client registry's use cases, for operators (the HTTP API's operator scope, the CLI
on the server's host): register a client, approve the NPI a UDAP client claims, revoke
one. Each is ``use_case(command, uow)`` on a ``SecurityUnit`` and commits with its audit
event."""

from __future__ import annotations

from dataclasses import replace

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Conflict, InvalidInput, Issue, NotFound, StoreConflict
from payerbridge.security.model import (
    AddClient,
    ApproveOrganization,
    OrganizationEvidence,
    RegisteredClient,
    RevokeClient,
)
from payerbridge.security.unit import SecurityUnit

__all__ = ["add_client", "approve_organization", "revoke_client"]


def add_client(command: AddClient, uow: SecurityUnit) -> RegisteredClient:
    """Register a client an operator vouches for: the operator is the evidence of its
    NPI, recorded as such. Conflict when its id is taken."""
    actor = command.actor
    try:
        with uow:
            now = uow.now
            client = replace(
                command.client,
                npi_evidence=OrganizationEvidence.OPERATOR,
                npi_vouched_by=actor,
                npi_vouched_at=now,
            )
            uow.clients.add(uow, client, at=now)
            uow.record(
                AuditEvent(
                    at=now,
                    actor=actor,
                    action="client.register",
                    entity_type="Client",
                    entity_id=client.client_id,
                    outcome="success",
                    detail={
                        "npi": client.npi,
                        "npi_evidence": client.npi_evidence.value,
                        "kind": client.kind.value,
                        "scope": " ".join(sorted(client.scopes)),
                    },
                )
            )
    except StoreConflict as exc:
        raise Conflict(
            f"a client with id '{command.client.client_id}' is already registered",
            issues=[Issue("choose another client id", "id", "duplicate")],
        ) from exc
    return client


def approve_organization(command: ApproveOrganization, uow: SecurityUnit) -> RegisteredClient:
    """An operator approves the pairing of a waiting client with the NPI it claims (named
    again, so that an approval is of what the operator checked); audited. NotFound for no
    active client, InvalidInput when the NPI is not the claimed one, Conflict when the
    client's NPI is bound already."""
    client_id, npi, actor = command.client_id, command.npi, command.actor
    client = uow.clients.get(client_id)
    if client is None or client.is_revoked:
        raise NotFound(f"no active client is registered with id '{client_id[:200]}'")
    if npi != client.npi:
        raise InvalidInput(
            "the NPI to approve is not the one the client registered for",
            issues=[Issue(f"the client registered for NPI {client.npi}; approve that", "npi")],
        )
    if not client.is_awaiting_approval:
        raise Conflict(
            f"the client's NPI is bound already (by {client.npi_evidence.value}); "
            "nothing to approve"
        )
    with uow:
        now = uow.now
        if not uow.clients.approve(uow, client_id, npi, by=actor, at=now):
            raise Conflict("the client changed while it was being approved; look again")
        uow.record(
            AuditEvent(
                at=now,
                actor=actor,
                action="client.approve",
                entity_type="Client",
                entity_id=client_id,
                outcome="success",
                detail={"npi": npi, "npi_evidence": OrganizationEvidence.OPERATOR.value},
            )
        )
    return replace(
        client,
        npi_evidence=OrganizationEvidence.OPERATOR,
        npi_vouched_by=actor,
        npi_vouched_at=now,
    )


def revoke_client(command: RevokeClient, uow: SecurityUnit) -> None:
    """Revoke the client now; NotFound when there is no active client of that id."""
    client_id = command.client_id
    with uow:
        if not uow.clients.revoke(uow, client_id, at=uow.now):
            raise NotFound(f"no active client is registered with id '{client_id[:200]}'")
        uow.record(
            AuditEvent(
                at=uow.now,
                actor=command.actor,
                action="client.revoke",
                entity_type="Client",
                entity_id=client_id,
                outcome="success",
                detail={},
            )
        )
