"""Replay every dead letter of one partner in one action (after its outage): each is
replayed as ``interventions.replay`` replays one (consent and identity checked again, a
fresh deadline), and the action itself is audited on the partner
(``partner.dead-letters-replayed``, with the exchanges it replayed).

Idempotent: with a key, each exchange is replayed under ``{key}:{exchange id}``, so the
same action sent again replays nothing it already replayed; without one, a second action
finds only the dead letters that came since. An exchange that moved meanwhile (another
operator replayed or cancelled it) is skipped, not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Conflict
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.interventions import replay
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.types import ExchangeId, PartnerId

__all__ = ["PartnerReplay", "replay_partner_dead_letters"]

logger = logging.getLogger(__name__)

# An exchange id and the separator fit the column (200) with a key of this length.
_KEY_LENGTH = 120


@dataclass(frozen=True)
class PartnerReplay:
    """``replayed``: the exchanges this action replayed; ``already``: those found
    dead-lettered again that the same key had replayed (a replay under one key is made
    once); ``skipped``: those that moved meanwhile."""

    partner_id: PartnerId
    replayed: tuple[ExchangeId, ...]
    already: tuple[ExchangeId, ...] = ()
    skipped: tuple[ExchangeId, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "partner_id": self.partner_id,
            "replayed": list(self.replayed),
            "already_replayed": list(self.already),
            "skipped": list(self.skipped),
        }


def replay_partner_dead_letters(
    uow: ExchangeUnit,
    partner_id: PartnerId,
    *,
    actor: str,
    replay_key: str | None,
    request_id: str | None = None,
) -> PartnerReplay:
    """Replay every exchange with ``partner_id`` that is dead-lettered now."""
    now = uow.clock()
    key = replay_key[:_KEY_LENGTH] if replay_key else None
    replayed: list[ExchangeId] = []
    already: list[ExchangeId] = []
    skipped: list[ExchangeId] = []
    found = uow.exchanges.ids_in_state(
        ExchangeState.DEAD_LETTERED,
        updated_before=now + timedelta(microseconds=1),  # dead-lettered by now
        partner_id=partner_id,
    )
    for exchange_id in found:
        try:
            done = replay(
                uow,
                exchange_id,
                actor=actor,
                replay_key=f"{key}:{exchange_id}" if key else None,
            )
        except Conflict:
            skipped.append(exchange_id)
            continue
        (replayed if done else already).append(exchange_id)
    result = PartnerReplay(partner_id, tuple(replayed), tuple(already), tuple(skipped))
    if replayed:
        with uow:
            uow.record(_event(result, actor, key, request_id, now))
    logger.info(
        "partner dead letters replayed",
        extra={"partner_id": partner_id, "replayed": len(replayed), "skipped": len(skipped)},
    )
    return result


def _event(
    done: PartnerReplay, actor: str, key: str | None, request_id: str | None, now: datetime
) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=actor,
        action="partner.dead-letters-replayed",
        entity_type="Partner",
        entity_id=done.partner_id,
        outcome="success",
        request_id=request_id,
        detail={
            "replayed": list(done.replayed),
            "count": len(done.replayed),
            "skipped": list(done.skipped),
            "replay_key": key,
        },
    )
