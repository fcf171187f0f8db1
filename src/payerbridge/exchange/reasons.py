"""Every reason code an exchange records, in one place (pure).

A code says why an exchange moved where it did: on its transitions (``reason_code``), as
its ``error.code`` while it is stopped, on its dead letter, and in the ``reason`` of an
attempt that waits. The values are on the wire (``GET /exchanges``, webhooks) and in the
database: never change one. Each has its runbook, ``docs/runbooks/<code>.md``.

Besides these, ``blocked`` carries the consent's own deny reason (``consent.model.DenyReason``:
``revoked``, ``expired``...), from our check or the old payer's refusal, and a failed
exchange may carry ``internal-error``, which is the error tree's (``errors.py``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ExchangeReason"]


class ExchangeReason(StrEnum):
    # → failed: the exchange ends here
    UNKNOWN_PARTNER = "unknown-partner"  # the old payer is no longer registered
    NO_ROUTE = "no-route"  # no way to the member's data at the partner that we can use
    NO_MATCH = "no-match"  # the old payer found no member
    MULTIPLE_MATCHES = "multiple-matches"  # ... or several
    PARTNER_ERROR = "partner-error"  # a terminal refusal or an answer we cannot read
    PARTNER_UNAUTHORIZED = "partner-unauthorized"  # our credentials refused twice
    PARTNER_REVIEW_EXPIRED = "partner-review-expired"  # its reviewer did not decide in time
    IDENTITY_CHANGED = "identity-changed"  # matched another member than before (also → review)
    NO_MATCHED_MEMBER = "no-matched-member"  # reached retrieval without a member
    INVALID_PAYLOAD = "invalid-payload"  # the record received cannot be kept
    CANCELLED = "cancelled"  # an operator ended it
    STATE_CHANGED = "state-changed"  # someone else moved it while a step ran
    INTERNAL_ERROR = "internal-error"  # a bug: see the server log
    # → blocked: the old payer refused on consent grounds without saying which
    PARTNER_REFUSED = "refused"
    # → manual_review: the old payer's reviewer is looking at the match
    PARTNER_REVIEW = "partner-review"
    # → dead_lettered: the exchange's deadline passed (or leaves no time for another call)
    # with the partner still not answering; or a limit an operator set besides ran out:
    # the attempts a step may make, a step's own budget
    DEADLINE_EXCEEDED = "deadline-exceeded"
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    BUDGET_EXHAUSTED = "budget-exhausted"
    # → validated: an operator asked again
    REPLAY = "replay"
    # → partial / conflict: the data was stored, with what it lacked or where sources disagree
    INCOMPLETE = "incomplete"
    CONFLICT = "conflict"
    # → completed: an incremental exchange (``since``) whose answer held nothing new
    NOTHING_NEW = "nothing-new"
    # an attempt that waits (no state change): why the call did not go, or brought nothing
    PARTNER_UNAVAILABLE = "partner-unavailable"
    MAINTENANCE = "maintenance"
    RATE_LIMITED = "rate-limited"
    CIRCUIT_OPEN = "circuit-open"
