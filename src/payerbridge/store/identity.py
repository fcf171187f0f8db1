"""The identity engine's tables: member index, models, decisions, review cases, graph, attempts.

The pure engine (``payerbridge.identity``) decides; this adapter keeps what it
needs between requests. The demographics it keeps, the standardised records matching
compares (``identity_member_records.record``) and a review case's request
(``identity_reviews.request_record``), are sealed under the data keys (ADR 0039): sealed
as they are written, opened as they are read, each bound to its row. So are the
identity graph's identifiers (``identity_links.value``), looked up by a keyed hash.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from payerbridge.errors import NotFound
from payerbridge.identity.matching.model import StoredModel, evidence_from_stored
from payerbridge.identity.model import (
    IdentityLink,
    IndexChanges,
    IndexSource,
    LinkKind,
    ReviewCase,
    ReviewDecision,
    ReviewQuery,
    StandardRecord,
    record_from_dict,
)
from payerbridge.identity.ports import DecisionToRecord
from payerbridge.processes import usable_cpus
from payerbridge.store.at_rest import AtRest, at_rest, token_index_key
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.dbapi import cursor_of, insert_rows, raw_cursor
from payerbridge.store.identity_sql import IdentitySql, SqlMatchWrites
from payerbridge.store.members import RECEIVED_SOURCES, is_received
from payerbridge.store.sealed_columns import (
    MEMBER_RECORD,
    REVIEW_REQUEST,
    SealedLinks,
    link_index_key,
)
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.search_index import rekey_tokens
from payerbridge.store.tables import (
    fhir_resources,
    identity_blocking_keys,
    identity_decisions,
    identity_links,
    identity_member_records,
    identity_models,
    identity_reviews,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, MemberId

__all__ = ["SqlIdentityStore"]

_INDEX_BATCH = 2000
_MODEL_TTL_SECONDS = 30.0


def _link(row: Any, links: SealedLinks) -> IdentityLink:
    return IdentityLink(
        row.member_id,
        row.kind,
        row.system,
        links.open(row),
        row.assigner,
        row.decision_id,
        row.recorded_by,
        row.valid_from,
        row.valid_to,
    )


def _review(row: Any) -> ReviewCase:
    return ReviewCase(
        row.id,
        row.decision_id,
        row.status,
        row.client_id,
        row.request_key,
        tuple(orjson.loads(row.candidate_ids)),
        row.opened_at,
        row.member_id,
        row.reviewer,
        row.reason,
        row.decided_at,
        row.opened_because,
        version=row.version,
        risk=row.risk,
        due_at=row.due_at,
        policy=row.policy,
    )


# Review cases without the request they hold (demographics, read only to show a case).
_REVIEWS = select(*(c for c in identity_reviews.c if c.name != "request_record"))


def _in_queue(query: ReviewQuery) -> Select[Any]:
    """The cases ``query`` asks for, in the queue's order (the index ``ix_identity_reviews_
    queue`` for a status), from after its position."""
    reviews = identity_reviews.c
    page = _REVIEWS.order_by(reviews.due_at, reviews.id).limit(query.limit)
    if query.status is not None:
        page = page.where(reviews.status == query.status)
    if query.policy is not None:
        page = page.where(reviews.policy == query.policy)
    if query.reason is not None:
        # One of the listed reasons ("a, b"): delimited on both sides, wildcards escaped.
        listed = literal(", ") + reviews.opened_because + literal(", ")
        page = page.where(listed.contains(f", {query.reason}, ", autoescape=True))
    if query.opened_before is not None:
        page = page.where(reviews.opened_at <= query.opened_before)
    if query.after is not None:
        due, review_id = query.after.due_at, query.after.id
        page = page.where(
            or_(reviews.due_at > due, and_(reviews.due_at == due, reviews.id > review_id))
        )
    return page


class SqlIdentityStore:
    """Identity tables in the SQL database; ``secret`` keys the blocking and request hashes,
    ``keyring`` seals the demographics.

    Indexing (``identity.indexing``) reads members back ``index_batch`` at a time and
    builds their entries on ``index_workers`` processes (by default one per usable CPU)."""

    def __init__(
        self,
        engine: Engine,
        secret: bytes,
        *,
        keyring: DataKeyring,
        reader: Engine | None = None,
        index_workers: int | None = None,
        index_batch: int = _INDEX_BATCH,
    ) -> None:
        self._engine = engine
        # Matching's reads go through ``reader`` (on SQLite, without the write lock).
        self._reader = reader or engine
        self._secret = secret
        self._keyring = keyring
        self._links = SealedLinks(keyring, link_index_key(secret))
        self._sql = IdentitySql(engine.dialect)
        # How indexing (``identity.indexing``) reads members back and builds their entries.
        self.index_workers = usable_cpus() if index_workers is None else index_workers
        self.index_batch = index_batch
        self._model: tuple[float, str, StoredModel | None] | None = None
        self._count: tuple[float, int] | None = None

    def close(self) -> None:
        if self._reader is not self._engine:
            self._reader.dispose()

    # -- keyed hashes ----------------------------------------------------------------------

    @property
    def blocking_secret(self) -> bytes:
        """The secret the room keys blocking keys with (``identity.matching.blocking``): the
        one this store keys its hashes with, so a new one means ``identity reindex``."""
        return self._secret

    def keyed_hash(self, *parts: str | None) -> str:
        """A keyed hash of values that must not be stored in clear (requests, card data)."""
        message = orjson.dumps(list(parts))
        return hmac.digest(self._secret, message, "sha256").hex()  # one C call

    # -- sealed demographics ---------------------------------------------------------------

    def _opened(self, member_id: str, stored: str) -> bytes:
        """A member's standardised record (JSON) as stored sealed."""
        return self._keyring.open(stored, field=MEMBER_RECORD, row_key=member_id)

    def _record(self, member_id: str, stored: str) -> StandardRecord:
        return record_from_dict(orjson.loads(self._opened(member_id, stored)))

    # -- the member index ------------------------------------------------------------------

    def stored_entries(
        self, unit: UnitOfWork, member_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """Each of these members that is indexed: its record (opened) and listed keys."""
        with cursor_of(sql_unit(unit).connection) as cursor:
            cursor.execute(*self._sql.stored_entries(member_ids))
            return {
                member: (self._opened(member, record).decode(), keys)
                for member, record, keys in cursor.fetchall()
            }

    def index_source(self, unit: UnitOfWork, member_ids: Sequence[str]) -> IndexSource:
        """Our members' own Patients among these (by primary key: a Patient's ref is
        "Patient/<id>"), and every Coverage in their compartments, opened."""
        connection = sql_unit(unit).connection
        keys = at_rest(connection)
        sql = self._sql
        with cursor_of(connection) as cursor:
            cursor.execute(*sql.resources_by_ref([f"Patient/{member}" for member in member_ids]))
            patients = {
                member_id: _open_resource(keys, f"Patient/{member_id}", body)
                for member_id, body, source in cursor.fetchall()
                # Copies of other payers' records (our Patient for a member among them,
                # ADR 0054), not our members.
                if not source.startswith(RECEIVED_SOURCES)
            }
            cursor.execute(*sql.coverages_of(list(patients)))
            coverages: dict[str, list[str]] = {}
            for patient_id, ref, body in cursor.fetchall():
                coverages.setdefault(patient_id, []).append(_open_resource(keys, ref, body))
        return IndexSource(patients, coverages)

    def patients(self, unit: UnitOfWork, member_ids: Sequence[str]) -> dict[str, str]:
        """The Patients of these members, opened, whatever their source."""
        connection = sql_unit(unit).connection
        keys = at_rest(connection)
        with cursor_of(connection) as cursor:
            cursor.execute(
                *self._sql.resources_by_ref([f"Patient/{member}" for member in member_ids])
            )
            return {
                member_id: _open_resource(keys, f"Patient/{member_id}", body)
                for member_id, body, _ in cursor.fetchall()
            }

    def write_entries(self, unit: UnitOfWork, changes: IndexChanges, *, at: datetime) -> None:
        """Remove the records ``changes`` replaces and the keys it removes, each key by its
        primary key (the key table has no index by member: ADR 0020), and write its
        records, sealed."""
        sql = self._sql
        stamp = sql.timestamp(at)
        with cursor_of(sql_unit(unit).connection) as cursor:
            if changes.replaced:
                cursor.execute(*sql.drop_records(changes.replaced))
            sql.drop_keys(cursor, changes.removed)
            insert_rows(
                cursor,
                (
                    sql.member_records,
                    [
                        {
                            "member_id": entry.member_id,
                            "indexed_at": stamp,
                            "record": self._keyring.seal(
                                entry.record, field=MEMBER_RECORD, row_key=entry.member_id
                            ),
                            "blocking_keys": entry.keys,
                        }
                        for entry in changes.write
                    ],
                ),
            )

    def add_keys(
        self, unit: UnitOfWork, *, listed: Sequence[str], added: Sequence[tuple[str, str]]
    ) -> None:
        """The keys listed on these members' records, in key order at once (ADR 0021), and
        the (key, member) pairs ``added``."""
        sql = self._sql
        with cursor_of(sql_unit(unit).connection) as cursor:
            if listed:
                cursor.execute(*sql.listed_keys(listed))
            insert_rows(cursor, (sql.keys, [{"key": k, "member_id": m} for k, m in added]))

    def clear_index(self, unit: UnitOfWork) -> list[str]:
        """Empty the index in ``unit`` and key the links' and tokens' blind indexes anew
        (under this store's secret); our members' Patients, to index again."""
        with self._engine.connect() as connection:
            member_ids = list(
                connection.execute(
                    select(fhir_resources.c.resource_id).where(
                        fhir_resources.c.resource_type == "Patient",
                        ~is_received(),
                    )
                ).scalars()
            )
        connection = sql_unit(unit).connection
        connection.execute(delete(identity_blocking_keys))
        connection.execute(delete(identity_member_records))
        self._rekey_links(connection)
        rekey_tokens(connection, token_index_key(self._secret))
        return member_ids

    def _rekey_links(self, connection: Connection) -> None:
        """Every link's blind index computed again (under this store's secret)."""
        links = identity_links.c
        rows = connection.execute(
            select(links.id, links.member_id, links.kind, links.system, links.value)
        ).all()
        for row in rows:
            connection.execute(
                update(identity_links)
                .where(links.id == row.id)
                .values(value_key=self._links.key_of(self._links.open(row)))
            )

    def candidates(self, keys: Iterable[str]) -> list[tuple[MemberId, StandardRecord]]:
        """Members sharing at least one blocking key, in member id order; a member merged
        into another (a duplicate record of the survivor) is not a candidate."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        sql, parameters = self._sql.candidates(wanted)
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        return [
            (MemberId(member_id), self._record(member_id, record)) for member_id, record in rows
        ]

    def candidates_of_many(
        self, key_sets: Sequence[frozenset[str]]
    ) -> list[list[tuple[MemberId, StandardRecord]]]:
        """``candidates`` of several requests (one set of blocking keys each) in two reads
        for all of them, each record parsed once: a bulk match's chunk."""
        wanted = sorted(set().union(*key_sets))
        if not wanted:
            return [[] for _ in key_sets]
        by_key: dict[str, list[str]] = {}
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            cursor.execute(*self._sql.members_by_key(wanted))
            for key, member_id in cursor.fetchall():
                by_key.setdefault(key, []).append(member_id)
            members = sorted({m for found in by_key.values() for m in found})
            records: dict[str, StandardRecord] = {}
            if members:
                cursor.execute(*self._sql.current_records(members))
                records = {
                    member_id: self._record(member_id, record)
                    for member_id, record in cursor.fetchall()
                }
        return [
            [
                (MemberId(member_id), records[member_id])
                for member_id in sorted({m for key in keys for m in by_key.get(key, ())})
                if member_id in records
            ]
            for keys in key_sets
        ]

    def member_count(self) -> int:
        """Indexed members; cached briefly (it sets the prior of every online match)."""
        now = time.monotonic()
        if self._count is not None and now - self._count[0] < _MODEL_TTL_SECONDS:
            return self._count[1]
        with self._reader.connect() as connection:
            count = int(
                connection.execute(
                    select(func.count()).select_from(identity_member_records)
                ).scalar_one()
            )
        self._count = (now, count)
        return count

    def indexed_member_ids(self) -> list[MemberId]:
        """Every indexed member's id, in order (training draws its sample from them)."""
        query = select(identity_member_records.c.member_id).order_by(
            identity_member_records.c.member_id
        )
        with self._engine.connect() as connection:
            return [MemberId(member_id) for member_id in connection.execute(query).scalars()]

    def records_of(
        self, member_ids: Sequence[str]
    ) -> list[tuple[MemberId, StandardRecord, list[str]]]:
        """The standardised records of these indexed members, each with its blocking keys,
        in the order asked."""
        found: dict[str, tuple[StandardRecord, list[str]]] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(member_ids), _INDEX_BATCH):
                chunk = member_ids[start : start + _INDEX_BATCH]
                for row in connection.execute(
                    select(
                        identity_member_records.c.member_id,
                        identity_member_records.c.record,
                        identity_member_records.c.blocking_keys,
                    ).where(identity_member_records.c.member_id.in_(chunk))
                ):
                    found[row.member_id] = (
                        self._record(row.member_id, row.record),
                        orjson.loads(row.blocking_keys),
                    )
        return [(MemberId(m), *found[m]) for m in member_ids if m in found]

    # -- models ----------------------------------------------------------------------------

    def save_model(self, unit: UnitOfWork, model: StoredModel, *, activate: bool = True) -> None:
        """Keep the model, trained at ``unit.now`` and active from then unless told not."""
        connection = sql_unit(unit).connection
        exists = connection.execute(
            select(identity_models.c.version).where(identity_models.c.version == model.version)
        ).first()
        values = {"activated_at": unit.now if activate else None}
        if exists:
            connection.execute(
                update(identity_models)
                .where(identity_models.c.version == model.version)
                .values(**values)
            )
        else:
            connection.execute(
                insert(identity_models).values(
                    version=model.version,
                    spec_fingerprint=model.spec_fingerprint,
                    trained_at=unit.now,
                    trained_on=model.trained_on,
                    summary=orjson.dumps(model.summary).decode(),
                    body=model.body,
                    **values,
                )
            )
        self._model = None

    def active_model(self, spec_fingerprint: str) -> StoredModel | None:
        """The newest activated model trained under the spec of ``spec_fingerprint`` (cached
        briefly)."""
        now = time.monotonic()
        cached = self._model
        if (
            cached is not None
            and now - cached[0] < _MODEL_TTL_SECONDS
            and cached[1] == spec_fingerprint
        ):
            return cached[2]
        models = identity_models.c
        with self._reader.connect() as connection:
            row = connection.execute(
                select(models.version, models.body, models.trained_on, models.summary)
                .where(
                    models.activated_at.is_not(None), models.spec_fingerprint == spec_fingerprint
                )
                .order_by(models.activated_at.desc())
                .limit(1)
            ).first()
        model = (
            None
            if row is None
            else StoredModel(
                row.version, spec_fingerprint, row.body, row.trained_on, orjson.loads(row.summary)
            )
        )
        self._model = (now, spec_fingerprint, model)
        return model

    # -- decisions and the review queue ----------------------------------------------------

    def match_writes(self, unit: UnitOfWork) -> SqlMatchWrites:
        """A ``$member-match``'s writes, in ``unit``."""
        return SqlMatchWrites(sql_unit(unit), self._sql, self._keyring, self._links)

    def record_decisions(self, unit: UnitOfWork, decisions: Sequence[DecisionToRecord]) -> None:
        """Store decisions with their evidence and review cases in ``unit`` (bulk matching;
        their audit events are the caller's to record)."""
        if not decisions:
            return
        sql = self._sql
        cursor = sql_unit(unit).copy_cursor()  # the decisions go by COPY on PostgreSQL
        insert_rows(
            cursor,
            (
                sql.decisions,
                [sql.decision_row(d.decision, d.client_id, d.request_key) for d in decisions],
            ),
        )
        reviews = [
            sql.review_row(d.decision, d.review, d.client_id, d.request_key, self._keyring)
            for d in decisions
            if d.review is not None
        ]
        if reviews:
            cursor.executemany(sql.review, reviews)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        """The stored decision: outcome, requester, versions and the evidence."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(identity_decisions).where(identity_decisions.c.id == decision_id)
            ).first()
        if row is None:
            return None
        return {
            "id": row.id,
            "outcome": row.outcome,
            "member": row.member_id,
            "requester": row.client_id,
            "policy_version": row.policy_version,
            "model_version": row.model_version,
            "decided_at": row.decided_at,
            "evidence": evidence_from_stored(orjson.loads(row.evidence)),
        }

    def reviews(self, query: ReviewQuery) -> list[ReviewCase]:
        """One page of cases in the queue's order: when each is due, then its id."""
        with self._engine.connect() as connection:
            rows = connection.execute(_in_queue(query)).all()
        return [_review(row) for row in rows]

    def review(self, review_id: str) -> ReviewCase | None:
        with self._engine.connect() as connection:
            row = connection.execute(_REVIEWS.where(identity_reviews.c.id == review_id)).first()
        return _review(row) if row else None

    def review_request(self, review_id: str) -> StandardRecord | None:
        """The request as matching read it, kept with the case (demographics)."""
        with self._engine.connect() as connection:
            stored = connection.execute(
                select(identity_reviews.c.request_record).where(identity_reviews.c.id == review_id)
            ).scalar_one_or_none()
        if stored is None:
            return None
        opened = self._keyring.open(stored, field=REVIEW_REQUEST, row_key=review_id)
        return record_from_dict(orjson.loads(opened))

    def latest_review(self, client_id: ClientId, request_key: str) -> ReviewCase | None:
        """The newest case opened for this requester's request (the same request again)."""
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            cursor.execute(
                self._sql.latest_review, {"client_id": client_id, "request_key": request_key}
            )
            row = cursor.fetchone()
        return None if row is None else self.review(row[0])

    def decide_review(
        self, unit: UnitOfWork, decision: ReviewDecision, *, at: datetime
    ) -> ReviewCase | None:
        """Close the case in ``unit`` if it is open at ``decision.version``: one conditional UPDATE,
        so of two deciders at once one wins (the other's finds no row: on PostgreSQL it
        waits for the first's row lock, then reads the row it left). None when no row
        was changed."""
        connection = sql_unit(unit).connection
        reviews = identity_reviews.c
        closed = connection.execute(
            update(identity_reviews)
            .where(
                reviews.id == decision.review_id,
                reviews.status == "open",
                reviews.version == decision.version,
            )
            .values(
                status="accepted" if decision.accept else "rejected",
                member_id=decision.member_id,
                reviewer=decision.reviewer,
                reason=decision.reason,
                decided_at=at,
                version=reviews.version + 1,
            )
        )
        return self._changed(connection, decision.review_id, closed.rowcount)

    def reopen_review(self, unit: UnitOfWork, review_id: str, *, version: int) -> ReviewCase | None:
        """Open the decided case again in ``unit`` if it is at ``version`` (one conditional
        UPDATE), its decision cleared; None when no row was changed."""
        connection = sql_unit(unit).connection
        reviews = identity_reviews.c
        reopened = connection.execute(
            update(identity_reviews)
            .where(reviews.id == review_id, reviews.status != "open", reviews.version == version)
            .values(
                status="open",
                member_id=None,
                reviewer=None,
                reason=None,
                decided_at=None,
                version=reviews.version + 1,
            )
        )
        return self._changed(connection, review_id, reopened.rowcount)

    @staticmethod
    def _changed(connection: Connection, review_id: str, rowcount: int | None) -> ReviewCase | None:
        if not rowcount:
            return None
        row = connection.execute(_REVIEWS.where(identity_reviews.c.id == review_id)).one()
        return _review(row)

    # -- the identity graph ----------------------------------------------------------------

    def add_links(self, unit: UnitOfWork, links: Sequence[IdentityLink]) -> None:
        """Add links in ``unit``; a link already valid is kept as is."""
        _add_links(sql_unit(unit).connection, self._links, links)

    def end_link(self, unit: UnitOfWork, link: IdentityLink, *, at: datetime) -> None:
        """End the member's current link to ``link``'s value, of its kind, at ``at``."""
        _end_links(
            sql_unit(unit).connection,
            member_id=link.member_id,
            kind=link.kind,
            value_key=self._links.key_of(link.value),
            at=at,
        )

    def links_of(self, member_id: MemberId) -> list[IdentityLink]:
        """Every link of a member, current and ended, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(identity_links)
                .where(
                    or_(
                        identity_links.c.member_id == member_id,
                        and_(
                            identity_links.c.kind == "merged-into",
                            identity_links.c.value_key == self._links.key_of(member_id),
                        ),
                    )
                )
                .order_by(identity_links.c.valid_from, identity_links.c.id)
            ).all()
        return [_link(row, self._links) for row in rows]

    def members_by_identifier(self, value: str, system: str | None = None) -> list[IdentityLink]:
        """Links naming ``system|value`` (any system when None), current and ended."""
        condition = identity_links.c.value_key == self._links.key_of(value)
        if system is not None:
            condition = and_(condition, identity_links.c.system == system)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(identity_links).where(condition).order_by(identity_links.c.id)
            ).all()
        return [_link(row, self._links) for row in rows]

    def merged_into(self, member_ids: Iterable[MemberId]) -> dict[MemberId, MemberId]:
        """For each of these members merged into another, the member it now means."""
        wanted = sorted(set(member_ids))
        found: dict[MemberId, MemberId] = {}
        with self._reader.connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in connection.execute(
                    select(
                        identity_links.c.member_id,
                        identity_links.c.kind,
                        identity_links.c.system,
                        identity_links.c.value,
                    ).where(
                        identity_links.c.kind == LinkKind.MERGED_INTO,
                        identity_links.c.member_id.in_(chunk),
                        identity_links.c.valid_to.is_(None),
                    )
                ):
                    found[MemberId(row.member_id)] = MemberId(self._links.open(row))
        return found

    def change_merge(
        self,
        unit: UnitOfWork,
        *,
        member_id: MemberId,
        into: MemberId | None,
        at: datetime,
        link: IdentityLink | None,
    ) -> None:
        """Merge (``link`` given) or split (``into`` the member to split from) in ``unit``."""
        connection = sql_unit(unit).connection
        if link is not None:
            _add_links(connection, self._links, [link])
        else:
            assert into is not None
            if not _end_links(
                connection,
                member_id=member_id,
                kind=LinkKind.MERGED_INTO,
                value_key=self._links.key_of(into),
                at=at,
            ):
                raise NotFound(f"member {member_id} is not merged into {into}")


def _open_resource(keys: AtRest, ref: str, body: bytes) -> str:
    """A stored resource's JSON, opened."""
    return keys.open(body, RESOURCE_BODY, ref).decode()


def _add_links(connection: Connection, sealed: SealedLinks, links: Sequence[IdentityLink]) -> None:
    """Add links in the transaction of ``connection``; a link already valid is kept."""
    for link in links:
        value, value_key = sealed.seal(link)
        current = connection.execute(
            select(identity_links.c.id).where(
                identity_links.c.member_id == link.member_id,
                identity_links.c.kind == link.kind,
                identity_links.c.system == link.system,
                identity_links.c.value_key == value_key,
                identity_links.c.valid_to.is_(None),
            )
        ).first()
        if current is None:
            connection.execute(
                insert(identity_links).values(
                    member_id=link.member_id,
                    kind=link.kind,
                    system=link.system,
                    value=value,
                    value_key=value_key,
                    assigner=link.assigner,
                    decision_id=link.decision_id,
                    recorded_by=link.recorded_by,
                    valid_from=link.valid_from,
                    valid_to=link.valid_to,
                )
            )


def _end_links(
    connection: Connection, *, member_id: MemberId, kind: str, value_key: str, at: datetime
) -> int:
    result = connection.execute(
        update(identity_links)
        .where(
            identity_links.c.member_id == member_id,
            identity_links.c.kind == kind,
            identity_links.c.value_key == value_key,
            identity_links.c.valid_to.is_(None),
        )
        .values(valid_to=at)
    )
    return int(result.rowcount or 0)
