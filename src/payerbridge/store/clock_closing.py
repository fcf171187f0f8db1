"""Obligation rows closed when no longer owed (ADR 0037, amendment): a member's opt-in
revoked, or the member gone (erased). Each row still running (``done_at IS NULL``) of
the exchanges, standing pulls and onboarding members under a consent, of a list of
exchanges, or of review cases, is ``closed`` with the reason code and the instant, in
the caller's connection (the revocation's or the erasure's transaction). A row already
done (met, or missed by being late) keeps its standing: it was owed while it ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, String, and_, cast, exists, or_, select, update

from payerbridge.compliance.model import Standing, SubjectType
from payerbridge.store.compliance_tables import obligation_clocks
from payerbridge.store.tables import exchanges, onboarding_members, pull_schedules

__all__ = ["close_rows", "of_consent", "of_exchanges", "of_subjects"]

_T = obligation_clocks


def close_rows(conn: Connection, which: ColumnElement[bool], reason: str, *, at: datetime) -> int:
    """Close the rows ``which`` names that are still running; how many were."""
    closed = conn.execute(
        update(_T)
        .where(_T.c.done_at.is_(None), which)
        .values(standing=Standing.CLOSED.value, done_at=at, reason=reason[:64], updated_at=at)
    )
    return int(closed.rowcount or 0)


def of_consent(consent_id: str) -> ColumnElement[bool]:
    """The rows of what runs under the consent: its exchanges, its standing pulls' periods
    (subject ``<schedule>/<n>``) and its onboarding members (``<run>:<position>``)."""
    schedules = pull_schedules.c
    members = onboarding_members.c
    period_of = exists(
        select(schedules.id).where(
            schedules.consent_id == consent_id,
            _T.c.subject_id.like(schedules.id.concat("/%")),
        )
    )
    member_key = members.onboarding_id.concat(":").concat(cast(members.position, String))
    return or_(
        and_(
            _T.c.subject_type == SubjectType.EXCHANGE.value,
            _T.c.subject_id.in_(select(exchanges.c.id).where(exchanges.c.consent_id == consent_id)),
        ),
        and_(_T.c.subject_type == SubjectType.PULL.value, period_of),
        and_(
            _T.c.subject_type == SubjectType.ONBOARDING.value,
            _T.c.subject_id.in_(select(member_key).where(members.consent_id == consent_id)),
        ),
    )


def of_exchanges(exchange_ids: Sequence[str]) -> ColumnElement[bool]:
    """The rows of these exchanges."""
    return of_subjects(SubjectType.EXCHANGE, exchange_ids)


def of_subjects(subject_type: SubjectType, ids: Sequence[str]) -> ColumnElement[bool]:
    """The rows of these subjects of one type."""
    return and_(_T.c.subject_type == subject_type.value, _T.c.subject_id.in_(list(ids)))
