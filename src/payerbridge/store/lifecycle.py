"""The data lifecycle in SQL (ADR 0038): legal holds, the purge of what is past its
retention, and one member's erasure from every table that holds PHI.

Erasure reads the member's rows out of each room's tables by the member's own keys: our
Patient id (their compartment, identity index, links, sources, bulk lines), and for the
exchanges that imported into it, the member id and member key they were submitted under
(the opt-ins, other exchanges, onboardings). On SQLite it deletes with ``secure_delete``
on, so freed pages are zeroed, and ``compact`` checkpoints the write-ahead log; on
PostgreSQL ``compact`` vacuums the tables it touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update

from payerbridge.compliance.model import CATALOGUE, CLOSED_ERASED, Hold, phi_tables, undeclared
from payerbridge.compliance.ports import KeptRequests
from payerbridge.errors import Conflict, NotFound
from payerbridge.exchange.model import DATA_ENDS, TERMINAL_STATES, ExchangeState
from payerbridge.store.at_rest import at_rest
from payerbridge.store.clock_closing import close_rows, of_consent, of_exchanges
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.file_pieces import has_pieces
from payerbridge.store.sealed_columns import EXCHANGE_REQUEST
from payerbridge.store.sealed_fields import (
    CONSENT_RESOURCE,
    IDEMPOTENT_BODY,
    MEMBER_GROUP,
    ONBOARDING_BUNDLE,
    QUARANTINED_BODY,
)
from payerbridge.store.sealing import SealedField
from payerbridge.store.tables import (
    bulk_export_members,
    bulk_output_lines,
    consents,
    disclosure_snapshot_refs,
    disclosure_snapshots,
    exchange_payloads,
    exchanges,
    fhir_resources,
    fhir_tokens,
    idempotent_responses,
    identity_blocking_keys,
    identity_links,
    identity_member_records,
    identity_reviews,
    legal_holds,
    member_groups,
    metadata,
    onboarding_members,
    opt_out_choices,
    provider_attributions,
    pull_schedules,
    quarantined_resources,
    source_file_chunks,
    source_file_resources,
    source_files,
    source_members,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlLifecycleStore"]

logger = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...): well under every driver's parameter limit
_PAYLOAD_ENDS = tuple(s.value for s in DATA_ENDS | {ExchangeState.FAILED})
_REQUEST_ENDS = tuple(s.value for s in TERMINAL_STATES)
_ERASED_CONSENT = '{"resourceType":"Consent","status":"inactive","note":"erased"}'


class SqlLifecycleStore:
    def __init__(self, engine: Engine, *, keyring: DataKeyring, requests: KeptRequests) -> None:
        missing = undeclared(metadata.tables)
        if missing:
            # Fail closed: a table nobody declared might keep PHI nobody purges or erases.
            raise RuntimeError(f"tables without a retention class: {', '.join(missing)}")
        self._engine = engine
        self._requests = _Requests(keyring, requests)

    # -- legal holds ------------------------------------------------------------------
    def holds(self, unit: UnitOfWork, member_id: str) -> list[Hold]:
        rows = _conn(unit).execute(
            select(legal_holds)
            .where(legal_holds.c.member_id == member_id)
            .order_by(legal_holds.c.placed_at, legal_holds.c.id)
        )
        return [_hold(row) for row in rows]

    def hold(self, unit: UnitOfWork, hold_id: str) -> Hold | None:
        row = _conn(unit).execute(select(legal_holds).where(legal_holds.c.id == hold_id)).first()
        return None if row is None else _hold(row)

    def add_hold(self, unit: UnitOfWork, hold: Hold) -> None:
        _conn(unit).execute(legal_holds.insert().values(**hold.__dict__))

    def release_hold(self, unit: UnitOfWork, hold_id: str, *, by: str) -> Hold:
        conn = _conn(unit)
        row = conn.execute(select(legal_holds).where(legal_holds.c.id == hold_id)).first()
        if row is None:
            raise NotFound(f"legal hold {hold_id[:64]} does not exist")
        if row.released_at is not None:
            raise Conflict(f"legal hold {hold_id} was released already, by {row.released_by}")
        changed = conn.execute(
            update(legal_holds)
            .where(legal_holds.c.id == hold_id, legal_holds.c.released_at.is_(None))
            .values(released_by=by, released_at=unit.now)
        )
        if changed.rowcount != 1:
            raise Conflict(f"legal hold {hold_id} was released meanwhile")
        return dataclasses.replace(_hold(row), released_by=by, released_at=unit.now)

    # -- the purge --------------------------------------------------------------------
    def purge_payloads(self, unit: UnitOfWork, *, ended_before: datetime) -> list[str]:
        conn = _conn(unit)
        ids = list(
            conn.execute(
                select(exchange_payloads.c.exchange_id)
                .join(exchanges, exchanges.c.id == exchange_payloads.c.exchange_id)
                .where(exchanges.c.state.in_(_PAYLOAD_ENDS), exchanges.c.updated_at < ended_before)
            ).scalars()
        )
        for chunk in _chunks(ids):
            conn.execute(
                exchange_payloads.delete().where(exchange_payloads.c.exchange_id.in_(chunk))
            )
        return ids

    def minimise_requests(
        self, unit: UnitOfWork, *, ended_before: datetime, limit: int
    ) -> list[str]:
        conn = _conn(unit)
        rows = conn.execute(
            select(exchanges.c.id, exchanges.c.request)
            .where(
                exchanges.c.state.in_(_REQUEST_ENDS),
                exchanges.c.updated_at < ended_before,
                exchanges.c.request_minimised_at.is_(None),
            )
            .order_by(exchanges.c.updated_at)
            .limit(limit)
        ).all()
        for row in rows:
            kept = self._requests.kept.minimised(self._requests.read(row))
            conn.execute(
                update(exchanges)
                .where(exchanges.c.id == row.id)
                .values(
                    request=self._requests.write(row.id, kept),
                    member_identifier=None,
                    request_minimised_at=unit.now,
                )
            )
        return [row.id for row in rows]

    def forget_review_requests(self, unit: UnitOfWork, *, decided_before: datetime) -> list[str]:
        conn = _conn(unit)
        reviews = identity_reviews
        ids = list(
            conn.execute(
                select(reviews.c.id).where(
                    reviews.c.decided_at < decided_before, reviews.c.request_record.is_not(None)
                )
            ).scalars()
        )
        for chunk in _chunks(ids):
            conn.execute(update(reviews).where(reviews.c.id.in_(chunk)).values(request_record=None))
        return ids

    def purge_source_files(self, unit: UnitOfWork, *, mapped_before: datetime) -> list[str]:
        conn = _conn(unit)
        ids = list(
            conn.execute(
                select(source_files.c.id).where(
                    source_files.c.mapped_at < mapped_before, _has_body()
                )
            ).scalars()
        )
        _drop_file_bodies(conn, ids)
        return ids

    # -- erasure ----------------------------------------------------------------------
    def erase_member(self, unit: UnitOfWork, member_id: str) -> dict[str, int]:
        conn = _conn(unit)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
        try:
            removed: dict[str, int] = {}
            refs = _compartment(conn, member_id)
            removed |= _erase_records(conn, member_id, refs)
            removed |= _erase_identity(conn, member_id)
            removed |= _erase_sources(conn, member_id, refs)
            member_ids, exchange_ids = _exchanges_of(conn, member_id, self._requests)
            removed |= _erase_exchanges(conn, exchange_ids, self._requests, now=unit.now)
            removed |= _erase_consents(conn, member_ids | {member_id}, now=unit.now)
            removed |= _erase_answers(conn, member_id, member_ids)
            removed |= _erase_bulk(conn, member_id)
            removed |= _erase_provider_access(conn, member_id)
        finally:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = OFF")
        return {table: removed.get(table, 0) for table in sorted(phi_tables())}

    def compact(self, tables: Iterable[str]) -> None:
        if self._engine.dialect.name == "sqlite":
            # Outside any transaction (the engine's begin one on connect): the old pages
            # of the erased rows leave the write-ahead log; readers at work may keep some
            # until the next checkpoint, which the upkeep runs within seconds.
            path = self._engine.url.database or ""
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:
                logger.info("erasure checkpoint left pages to the next one")
            return
        with self._engine.connect() as conn:
            autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in sorted(set(tables) & CATALOGUE.keys()):
                autocommit.exec_driver_sql(f"VACUUM {metadata.tables[table].name}")


class _Requests:
    """Exchanges' requests as stored: sealed under the data keys (ADR 0039), and what
    the exchange room cuts of them (``kept``)."""

    def __init__(self, keyring: DataKeyring, kept: KeptRequests) -> None:
        self._keyring = keyring
        self.kept = kept

    def read(self, row: Any) -> dict[str, Any]:
        opened = self._keyring.open(row.request, field=EXCHANGE_REQUEST, row_key=row.id)
        document: dict[str, Any] = orjson.loads(opened)
        return document

    def write(self, exchange_id: str, document: dict[str, Any]) -> str:
        return self._keyring.seal(
            orjson.dumps(document), field=EXCHANGE_REQUEST, row_key=exchange_id
        )


def _conn(unit: UnitOfWork) -> Connection:
    return sql_unit(unit).connection


def _hold(row: Any) -> Hold:
    return Hold(
        id=row.id,
        member_id=row.member_id,
        reason=row.reason,
        placed_by=row.placed_by,
        placed_at=row.placed_at,
        released_by=row.released_by,
        released_at=row.released_at,
        placed_by_principal=row.placed_by_principal,
    )


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _compartment(conn: Connection, member_id: str) -> list[str]:
    """The refs of the member's compartment (their Patient among them)."""
    refs = set(
        conn.execute(
            select(fhir_resources.c.ref).where(fhir_resources.c.patient_id == member_id)
        ).scalars()
    )
    return sorted(refs | {f"Patient/{member_id}"})


def _erase_records(conn: Connection, member_id: str, refs: list[str]) -> dict[str, int]:
    counts = {"fhir_resources": 0, "fhir_tokens": 0, "disclosure_snapshots": 0}
    for chunk in _chunks(refs):
        counts["fhir_tokens"] += _deleted(
            conn, fhir_tokens.delete().where(fhir_tokens.c.ref.in_(chunk))
        )
        counts["fhir_resources"] += _deleted(
            conn, fhir_resources.delete().where(fhir_resources.c.ref.in_(chunk))
        )
    snapshots = list(
        conn.execute(
            select(disclosure_snapshots.c.id).where(disclosure_snapshots.c.patient_id == member_id)
        ).scalars()
    )
    for chunk in _chunks(snapshots):
        conn.execute(
            disclosure_snapshot_refs.delete().where(
                disclosure_snapshot_refs.c.snapshot_id.in_(chunk)
            )
        )
        counts["disclosure_snapshots"] += _deleted(
            conn, disclosure_snapshots.delete().where(disclosure_snapshots.c.id.in_(chunk))
        )
    return counts


def _erase_identity(conn: Connection, member_id: str) -> dict[str, int]:
    records = identity_member_records
    listed = conn.execute(
        select(records.c.blocking_keys).where(records.c.member_id == member_id)
    ).scalar_one_or_none()
    keys = list(orjson.loads(listed)) if listed else []
    counts = {"identity_blocking_keys": 0}
    blocking = identity_blocking_keys
    for chunk in _chunks(keys):
        counts["identity_blocking_keys"] += _deleted(
            conn,
            blocking.delete().where(blocking.c.member_id == member_id, blocking.c.key.in_(chunk)),
        )
    counts["identity_member_records"] = _deleted(
        conn, records.delete().where(records.c.member_id == member_id)
    )
    counts["identity_links"] = _deleted(
        conn, identity_links.delete().where(identity_links.c.member_id == member_id)
    )
    reviews = identity_reviews
    # A case about the member: they were its answer, or among its candidates.
    about = or_(
        reviews.c.member_id == member_id,
        reviews.c.candidate_ids.like(f'%"{_like(member_id)}"%', escape="\\"),
    )
    counts["identity_reviews"] = _deleted(
        conn,
        update(reviews)
        .where(about, reviews.c.request_record.is_not(None))
        .values(request_record=None),
    )
    return counts


def _erase_sources(conn: Connection, member_id: str, refs: list[str]) -> dict[str, int]:
    keys = list(
        conn.execute(
            select(source_members.c.source_key).where(source_members.c.member_id == member_id)
        ).scalars()
    )
    counts = {
        "source_members": _deleted(
            conn, source_members.delete().where(source_members.c.member_id == member_id)
        )
    }
    # Held resources name the member by their id at the source, or by ours. Sealed, they
    # are opened to be searched (an erasure is rare; the quarantine is small).
    mentions = [f'"{key}"'.encode() for key in keys] + [f"Patient/{member_id}".encode()]
    held = quarantined_resources.c
    naming = [
        row.seq
        for row in conn.execute(select(held.seq, held.id, held.body)).all()
        if _mentions(conn, row.body, QUARANTINED_BODY, row.id, mentions)
    ]
    counts["quarantined_resources"] = sum(
        _deleted(conn, quarantined_resources.delete().where(held.seq.in_(chunk)))
        for chunk in _chunks(naming)
    )
    # A file that gave any of the member's resources holds their PHI as received: its
    # body goes (what it gave was mapped; its digest and report stay).
    files: set[str] = set()
    for chunk in _chunks(refs):
        files |= set(
            conn.execute(
                select(source_file_resources.c.file_id).where(
                    source_file_resources.c.ref.in_(chunk)
                )
            ).scalars()
        )
    with_body = [
        file_id
        for chunk in _chunks(sorted(files))
        for file_id in conn.execute(
            select(source_files.c.id).where(source_files.c.id.in_(chunk), _has_body())
        ).scalars()
    ]
    counts["source_files"] = len(with_body)
    counts["source_file_chunks"] = _drop_file_bodies(conn, with_body)
    return counts


def _has_body() -> Any:
    """A source file still holds what was received: whole (kept before 0056) or pieces."""
    return or_(func.length(source_files.c.body) > 0, has_pieces(source_files.c.id))


def _drop_file_bodies(conn: Connection, ids: Sequence[str]) -> int:
    """The bodies of the files ``ids`` go, whole or in pieces; how many pieces went."""
    pieces = 0
    for chunk in _chunks(ids):
        conn.execute(update(source_files).where(source_files.c.id.in_(chunk)).values(body=b""))
        pieces += _deleted(
            conn, delete(source_file_chunks).where(source_file_chunks.c.file_id.in_(chunk))
        )
    return pieces


def _exchanges_of(
    conn: Connection, member_id: str, requests: _Requests
) -> tuple[set[str], list[str]]:
    """Our member ids and member keys the member's exchanges were submitted under, and
    every exchange of theirs: those that imported into their compartment, and the others
    for the same member of the same client."""
    rows = conn.execute(
        select(exchanges.c.id, exchanges.c.client_id, exchanges.c.request).where(
            exchanges.c.imported_patient_id == member_id
        )
    ).all()
    member_ids: set[str] = set()
    keys: set[str] = set()
    for row in rows:
        member = requests.kept.member_id(requests.read(row))
        if member:
            member_ids.add(member)
            keys.add(requests.kept.member_key(row.client_id, member))
    ids = set(
        conn.execute(
            select(exchanges.c.id).where(exchanges.c.imported_patient_id == member_id)
        ).scalars()
    )
    for chunk in _chunks(sorted(keys)):
        ids |= set(
            conn.execute(select(exchanges.c.id).where(exchanges.c.member_key.in_(chunk))).scalars()
        )
    return member_ids, sorted(ids)


def _erase_exchanges(
    conn: Connection, ids: list[str], requests: _Requests, *, now: datetime
) -> dict[str, int]:
    counts = {"exchanges": 0, "exchange_payloads": 0, "onboarding_members": 0}
    counts["pull_schedules"] = 0
    for chunk in _chunks(ids):
        close_rows(conn, of_exchanges(chunk), CLOSED_ERASED, at=now)  # no longer owed
        # Their standing pulls stop, and the request they kept is cut (ADR 0040).
        counts["pull_schedules"] += _deleted(
            conn,
            update(pull_schedules)
            .where(
                or_(
                    pull_schedules.c.source_exchange_id.in_(chunk),
                    pull_schedules.c.last_exchange_id.in_(chunk),  # a first request's
                )
            )
            .values(request=None, status="stopped", stop_reason="erased", next_due_at=None),
        )
        counts["exchange_payloads"] += _deleted(
            conn, exchange_payloads.delete().where(exchange_payloads.c.exchange_id.in_(chunk))
        )
        for row in conn.execute(
            select(exchanges.c.id, exchanges.c.request).where(exchanges.c.id.in_(chunk))
        ):
            document = requests.read(row)
            if requests.kept.is_erased(document):
                continue  # erased before
            kept = requests.kept.minimised(document, keep_member=False)
            counts["exchanges"] += _deleted(
                conn,
                update(exchanges)
                .where(exchanges.c.id == row.id)
                .values(
                    request=requests.write(row.id, kept),
                    member_identifier=None,
                    matched_member_ref=None,
                    request_minimised_at=now,
                ),
            )
    return counts


def _erase_consents(conn: Connection, member_ids: set[str], *, now: datetime) -> dict[str, int]:
    """The member's consents, kept as evidence that one was given (their id, period,
    policy and the resource's hash) with everything naming the member cut: the
    resource, who signed, and the member id itself (a digest that finds no member)."""
    counts = {"consents": 0, "onboarding_members": 0}
    for member in sorted(member_ids):
        mine = consents.c.member_id == member
        conn.execute(
            update(consents)
            .where(mine, consents.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by="erasure")
        )
        keys = at_rest(conn)
        for consent_id in conn.execute(select(consents.c.id).where(mine)).scalars().all():
            # What ran under it is no longer owed: the member left (ADR 0037, amendment).
            close_rows(conn, of_consent(consent_id), CLOSED_ERASED, at=now)
            counts["consents"] += _deleted(
                conn,
                update(consents)
                .where(consents.c.id == consent_id)
                .values(
                    resource=keys.seal(_ERASED_CONSENT, CONSENT_RESOURCE, consent_id),
                    performer="erased",
                    member_id=_erased(member),
                ),
            )
        onboarded = onboarding_members.c
        for run, position in conn.execute(
            select(onboarded.onboarding_id, onboarded.position).where(onboarded.member_id == member)
        ).all():
            counts["onboarding_members"] += _deleted(
                conn,
                update(onboarding_members)
                .where(onboarded.onboarding_id == run, onboarded.position == position)
                .values(
                    bundle=keys.seal("{}", ONBOARDING_BUNDLE, f"{run}|{position}"),
                    member_id=_erased(member),
                ),
            )
    return counts


def _erased(member_id: str) -> str:
    return "erased:" + hashlib.sha256(member_id.encode()).hexdigest()[:40]


def _erase_answers(conn: Connection, member_id: str, member_ids: set[str]) -> dict[str, int]:
    """Stored answers that name the member (a replay of one would disclose them again)."""
    answers = idempotent_responses.c
    names = [f"Patient/{member_id}".encode()] + [f'"{m}"'.encode() for m in sorted(member_ids)]
    removed = 0
    for row in conn.execute(select(answers.client_id, answers.idempotency_key, answers.body)):
        if _mentions(conn, row.body, IDEMPOTENT_BODY, f"{row[0]}|{row[1]}", names):
            removed += _deleted(
                conn,
                idempotent_responses.delete().where(
                    answers.client_id == row[0], answers.idempotency_key == row[1]
                ),
            )
    return {"idempotent_responses": removed}


def _mentions(
    conn: Connection, stored: str, field: SealedField, row_key: str, needles: list[bytes]
) -> bool:
    """Whether a sealed value (opened) holds any of ``needles``."""
    if not stored:
        return False
    text = at_rest(conn).open(stored, field, row_key)
    return any(needle in text for needle in needles)


def _erase_bulk(conn: Connection, member_id: str) -> dict[str, int]:
    """Bulk files' lines of the member, and their entry in the Groups that list them."""
    places = conn.execute(
        select(bulk_export_members.c.job_id, bulk_export_members.c.position).where(
            bulk_export_members.c.patient_id == member_id
        )
    ).all()
    lines = 0
    for job_id, position in places:
        lines += _deleted(
            conn,
            bulk_output_lines.delete().where(
                and_(bulk_output_lines.c.job_id == job_id, bulk_output_lines.c.member == position)
            ),
        )
    groups = 0
    reference = f"Patient/{member_id}"
    keys = at_rest(conn)
    for row in conn.execute(select(member_groups.c.id, member_groups.c.body)).all():
        text = keys.open(row.body, MEMBER_GROUP, row.id)
        if reference.encode() not in text:
            continue
        body = orjson.loads(text)
        body["member"] = [
            m for m in body.get("member", []) if m.get("entity", {}).get("reference") != reference
        ]
        body["quantity"] = len(body["member"])
        groups += _deleted(
            conn,
            update(member_groups)
            .where(member_groups.c.id == row.id)
            .values(body=keys.seal(orjson.dumps(body), MEMBER_GROUP, row.id)),
        )
    return {"bulk_output_lines": lines, "member_groups": groups}


def _erase_provider_access(conn: Connection, member_id: str) -> dict[str, int]:
    """The member's attributions and Provider Access choices (ADR 0059): with her record
    gone, no provider is attributed her."""
    return {
        table.name: _deleted(conn, table.delete().where(table.c.member_id == member_id))
        for table in (provider_attributions, opt_out_choices)
    }


def _deleted(conn: Connection, statement: Any) -> int:
    return int(conn.execute(statement).rowcount or 0)


def _like(value: str) -> str:
    """``value`` as a literal inside a LIKE pattern (escape ``\\``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
