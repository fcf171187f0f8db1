"""The card guard (HRex mm-7): one client may try the same member's demographics with at
most ``AttemptLimit.cards`` distinct card data within the window.

Every attempt counts, wherever it comes from: a ``$member-match`` and each member of a
``$bulk-member-match`` note theirs in the same table (``MatchWrites.note_attempt``), so
the processes on one database share the count. An attempt over the limit writes nothing
else: no decision and no review case (a guessed card does not reach a reviewer); online
it is answered 429, in bulk the member is listed as not matched and the job's error
file says why. The demographics and the card are kept as keyed hashes only.

Within the limit, a card is a guess when the client has tried the same demographics
with another card within the window (``is_wrong_card_guess``): one that only a reviewer
could match opens no review case (a reviewer would see every guess), and is answered as
no match (``WrongCardGuess``). The client's first card still goes to a reviewer when the
evidence asks for one, as does another client's. Both refusals are counted in the audit
chain by client and window (``audit.refusals``, ADR 0045).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from payerbridge.errors import TooManyAttempts, WrongCardGuess
from payerbridge.identity.matching.model import MatchOutcome
from payerbridge.identity.model import StandardRecord
from payerbridge.identity.ports import IdentityIndex, MatchWrites
from payerbridge.types import ClientId

__all__ = [
    "AttemptLimit",
    "Attempt",
    "CardTry",
    "is_wrong_card_guess",
    "note_attempt",
    "too_many_attempts",
    "wrong_card_guess",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptLimit:
    """At most ``cards`` distinct card data per client and demographics per ``window``."""

    cards: int
    window: timedelta


@dataclass(frozen=True)
class CardTry:
    """One try to note: the client that sent ``record``'s demographics with its card data,
    and when."""

    client_id: ClientId
    record: StandardRecord
    at: datetime


@dataclass(frozen=True)
class Attempt:
    """An attempt as noted: the last try of each distinct card within the window (this
    one included), oldest first, against the limit."""

    tried_at: list[datetime]
    limit: AttemptLimit

    @property
    def is_over(self) -> bool:
        return len(self.tried_at) > self.limit.cards


def note_attempt(
    index: IdentityIndex, writes: MatchWrites, tried: CardTry, limit: AttemptLimit
) -> Attempt:
    """Note the client's attempt at the record's demographics with its card data."""
    record = tried.record
    tried_at = writes.note_attempt(
        client_id=tried.client_id,
        demographics_key=index.keyed_hash(record.first_name, record.family_name, record.birth_date),
        card_key=index.keyed_hash(record.member_id, record.subscriber_id),
        at=tried.at,
        window=limit.window,
    )
    return Attempt(tried_at, limit)


def is_wrong_card_guess(attempt: Attempt, outcome: MatchOutcome) -> bool:
    """A request that only a reviewer could match, its demographics tried by this client
    with another card within the window: no case for it."""
    return outcome is MatchOutcome.REVIEW and len(attempt.tried_at) > 1


def wrong_card_guess() -> WrongCardGuess:
    """The answer to a wrong-card guess: no match, worded as any no match."""
    return WrongCardGuess("no member matched the demographics and coverage in the request")


def too_many_attempts(client_id: ClientId, attempt: Attempt, now: datetime) -> TooManyAttempts:
    """Refused until enough of the other cards have left the window for this one (tried
    again) to be within the limit: the true Retry-After."""
    tried, limit = len(attempt.tried_at), attempt.limit
    leaves_at = attempt.tried_at[tried - limit.cards - 1] + limit.window
    wait = max(1, math.ceil((leaves_at - now).total_seconds()))
    logger.warning(
        "member-match attempts over the limit",
        extra={"client_id": client_id, "cards_tried": tried, "retry_after_seconds": wait},
    )
    return TooManyAttempts(
        f"this client tried the same member's demographics with {tried} different cards "
        f"within {int(limit.window.total_seconds() // 60)} minutes; further attempts are "
        f"refused for {wait} seconds (HRex mm-7). Send the card data the member gave you.",
        retry_after_seconds=wait,
    )
