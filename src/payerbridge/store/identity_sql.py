"""The identity hot path on DB-API cursors: its statements, and a ``$member-match``'s writes.

Matching runs a handful of small statements per request; as SQLAlchemy expressions,
compiling, caching and binding them cost more than the database work (ADR 0006). The
statements are written here once per dialect; ``SqlMatchWrites`` runs a request's writes
on the cursor of its unit of work (``SqlIdentityStore.match_writes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Dialect

from payerbridge.audit.model import AuditEvent
from payerbridge.identity.matching.model import MatchDecision, MatchOutcome
from payerbridge.identity.model import IdentityLink, LinkKind, ReviewOpening, record_to_dict
from payerbridge.store.at_rest import at_rest
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.dbapi import insert_rows
from payerbridge.store.members import ResourceRow, ResourceSql
from payerbridge.store.sealed_columns import REVIEW_REQUEST, SealedLinks
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import (
    fhir_resources,
    identity_attempts,
    identity_blocking_keys,
    identity_decisions,
    identity_links,
    identity_member_records,
    identity_reviews,
)
from payerbridge.store.unit_of_work import SqlUnitOfWork
from payerbridge.types import ClientId, MemberId

__all__ = ["IdentitySql", "SqlMatchWrites"]

_DECISION_COLUMNS = (
    "id",
    "outcome",
    "member_id",
    "client_id",
    "request_key",
    "policy_version",
    "model_version",
    "decided_at",
    "evidence",
)


class IdentitySql(ResourceSql):
    """The hot path's statements as DB-API SQL, run on the transaction's own cursor.

    Matching runs a handful of small statements per request; built as SQLAlchemy
    expressions, compiling, caching and binding them cost more than the database
    work. These are written once per dialect, with named parameters; a UMB handed out
    re-indexes its Patient's tokens with ``write_batch``'s own statements.
    """

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._index_statements()
        self._decision_statements()
        self._graph_statements()
        self._candidate_statements()

    def _index_statements(self) -> None:
        """The index's writes and reads: members' records and blocking keys."""
        sql = self.sql
        # The index of a batch of members (an import, a reindex): many rows per statement.
        self.member_records = self.rows_insert(
            identity_member_records, ("member_id", "indexed_at", "record", "blocking_keys")
        )
        # Their keys, from the lists on their records, in key order at once: the key
        # table's b-tree then grows at its end instead of at random (ADR 0021).
        listed = (
            "jsonb_array_elements_text(CAST(r.blocking_keys AS jsonb)) AS k(value)"
            if self.is_postgres
            else "json_each(r.blocking_keys) AS k"
        )
        self._listed_keys = (
            f"INSERT INTO {identity_blocking_keys.name} (key, member_id) "
            f"SELECT k.value, r.member_id FROM {identity_member_records.name} AS r, {listed} "
            "WHERE r.member_id {one_of} ORDER BY k.value, r.member_id"
        )
        # A chunk of members read back to be indexed, each list one parameter: bound one
        # by one, thousands of them cost more to write out than the reads (ADR 0021).
        self._stored_entries = (
            f"SELECT member_id, record, blocking_keys FROM {identity_member_records.name} "
            "WHERE member_id {one_of}"
        )
        self._drop_records = (
            f"DELETE FROM {identity_member_records.name} WHERE member_id {{one_of}}"
        )
        # Keys a member indexed again no longer has, each by its whole primary key: the
        # table has no index by member (ADR 0020), so a delete by member alone, or by a
        # key and a list of members, reads every member under a key (ADR 0021 amendment 5).
        self._keys_delete = sql(
            f"DELETE FROM {identity_blocking_keys.name} AS k USING "
            "jsonb_to_recordset(CAST(:pairs AS jsonb)) AS p(key text, member_id text) "
            "WHERE k.key = p.key AND k.member_id = p.member_id"
            if self.is_postgres
            else f"DELETE FROM {identity_blocking_keys.name} "
            "WHERE key = :key AND member_id = :member_id"
        )
        # Keys a member indexed again gained.
        self.keys = self.rows_insert(identity_blocking_keys, ("key", "member_id"))
        self._resources_by_ref = (
            f"SELECT resource_id, body, source FROM {fhir_resources.name} WHERE ref {{one_of}}"
        )
        self._coverages_of = (
            f"SELECT patient_id, ref, body FROM {fhir_resources.name} "
            "WHERE resource_type = 'Coverage' AND patient_id {one_of}"
        )

    def _decision_statements(self) -> None:
        """A request's attempt (the card guard), its decision and its review case."""
        sql = self.sql
        # A card tried again only moves its row's time: the rows a count reads are the
        # distinct cards, however often a client resends the same request.
        self.attempt = self.insert(
            identity_attempts,
            ("client_id", "demographics_key", "card_key", "at"),
            " ON CONFLICT (client_id, demographics_key, card_key) DO UPDATE SET at = excluded.at",
        )
        self.cards_tried = sql(
            f"SELECT at FROM {identity_attempts.name} "
            "WHERE client_id = :client_id AND demographics_key = :demographics_key "
            "AND at > :since ORDER BY at"
        )
        self.decision = self.insert(identity_decisions, _DECISION_COLUMNS)
        # A bulk match's decisions, each with its evidence: by COPY on PostgreSQL.
        self.decisions = self.rows_insert(identity_decisions, _DECISION_COLUMNS, copy=True)
        self.review = self.insert(
            identity_reviews,
            (
                "id",
                "decision_id",
                "status",
                "client_id",
                "request_key",
                "candidate_ids",
                "opened_at",
                "version",
                "risk",
                "due_at",
                "policy",
                "opened_because",
                "request_record",
            ),
        )
        self.latest_review = sql(
            f"SELECT id FROM {identity_reviews.name} "
            "WHERE client_id = :client_id AND request_key = :request_key "
            "ORDER BY opened_at DESC LIMIT 1"
        )

    def _graph_statements(self) -> None:
        """The identity graph's links, and the Patient a UMB handed out is written to."""
        sql = self.sql
        self.current_links = sql(
            f"SELECT kind, system, value_key FROM {identity_links.name} "
            "WHERE member_id = :member_id AND valid_to IS NULL"
        )
        self.link = self.insert(
            identity_links,
            (
                "member_id",
                "kind",
                "system",
                "value",
                "value_key",
                "assigner",
                "decision_id",
                "recorded_by",
                "valid_from",
                "valid_to",
            ),
        )
        # A stored resource rewritten, as write_batch (store/members.py) rewrites one.
        self.rewrite_resource = sql(
            f"UPDATE {fhir_resources.name} SET patient_id = :patient_id, "
            "version_id = version_id + 1, last_updated = :last_updated, source = :source, "
            "body = :body WHERE ref = :ref"
        )
        self.patient = sql(
            f"SELECT body, source FROM {fhir_resources.name} WHERE ref = :ref"
            + (" FOR UPDATE" if self.is_postgres else "")
        )
        self.resource_types = sql(
            f"SELECT DISTINCT resource_type FROM {fhir_resources.name} "
            "WHERE patient_id = :patient_id"
        )

    def _candidate_statements(self) -> None:
        """The members under a request's blocking keys, merged ones left out."""
        self._candidates = (
            f"SELECT r.member_id, r.record FROM {identity_member_records.name} r "
            f"WHERE r.member_id IN (SELECT k.member_id FROM {identity_blocking_keys.name} k "
            "WHERE k.key {one_of}) AND NOT EXISTS (SELECT 1 FROM "
            f"{identity_links.name} l WHERE l.member_id = r.member_id "
            f"AND l.kind = '{LinkKind.MERGED_INTO}' AND l.valid_to IS NULL) "
            "ORDER BY r.member_id"
        )
        self._members_by_key = (
            f"SELECT k.key, k.member_id FROM {identity_blocking_keys.name} k WHERE k.key {{one_of}}"
        )
        self._current_records = (
            f"SELECT r.member_id, r.record FROM {identity_member_records.name} r "
            "WHERE r.member_id {one_of} AND NOT EXISTS (SELECT 1 FROM "
            f"{identity_links.name} l WHERE l.member_id = r.member_id "
            f"AND l.kind = '{LinkKind.MERGED_INTO}' AND l.valid_to IS NULL)"
        )

    def listed_keys(self, member_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """Insert the blocking keys listed on these members' records."""
        return self.one_of_many(self._listed_keys, member_ids)

    def stored_entries(self, member_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """Each of these members that is indexed, with its record and the keys listed on it."""
        return self.one_of_many(self._stored_entries, member_ids)

    def drop_records(self, member_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """Remove these members' records (not their keys)."""
        return self.one_of_many(self._drop_records, member_ids)

    def drop_keys(self, cursor: Any, pairs: Sequence[tuple[str, str]]) -> None:
        """Delete these (key, member id) rows of the key table, each by its primary key."""
        if not pairs:
            return
        if self.is_postgres:
            rows = [{"key": key, "member_id": member} for key, member in pairs]
            cursor.execute(self._keys_delete, {"pairs": orjson.dumps(rows).decode()})
        else:
            cursor.executemany(
                self._keys_delete, [{"key": key, "member_id": member} for key, member in pairs]
            )

    def resources_by_ref(self, refs: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The id, body and source of the resources of these refs."""
        return self.one_of_many(self._resources_by_ref, refs)

    def coverages_of(self, member_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The member id, ref and body of every Coverage in these members' compartments."""
        return self.one_of_many(self._coverages_of, member_ids)

    def candidates(self, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The current candidates of these blocking keys: SQL and parameters."""
        return self.one_of(self._candidates, keys)

    def members_by_key(self, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """Each of these blocking keys with the members indexed under it."""
        return self.one_of_many(self._members_by_key, keys)

    def current_records(self, member_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The records of these members, those merged into another left out."""
        return self.one_of_many(self._current_records, member_ids)

    def decision_row(
        self, decision: MatchDecision, client_id: ClientId, request_key: str
    ) -> dict[str, Any]:
        evidence = decision.evidence
        return {
            "id": decision.decision_id,
            "outcome": decision.outcome.value,
            "member_id": decision.member_id,
            "client_id": client_id,
            "request_key": request_key,
            "policy_version": evidence.policy_version,
            "model_version": evidence.model_version,
            "decided_at": self.timestamp(evidence.decided_at),
            "evidence": orjson.dumps(evidence.to_stored()).decode(),
        }

    def review_row(
        self,
        decision: MatchDecision,
        review: ReviewOpening,
        client_id: ClientId,
        request_key: str,
        keyring: DataKeyring,
    ) -> dict[str, Any]:
        """The case's row, its request (demographics) sealed for it."""
        request = orjson.dumps(record_to_dict(review.request))
        return {
            "id": review.id,
            "decision_id": decision.decision_id,
            "status": "open",
            "client_id": client_id,
            "request_key": request_key,
            "candidate_ids": orjson.dumps(list(decision.candidate_ids)).decode(),
            "opened_at": self.timestamp(decision.evidence.decided_at),
            "version": 1,
            "risk": review.priority.risk,
            "due_at": self.timestamp(review.priority.due_at),
            "policy": review.policy,
            "opened_because": decision.evidence.review_reason,
            "request_record": keyring.seal(request, field=REVIEW_REQUEST, row_key=review.id),
        }

    def link_row(self, link: IdentityLink, sealed: SealedLinks) -> dict[str, Any]:
        """The link's row, its value sealed and its blind index beside it."""
        value, value_key = sealed.seal(link)
        return {
            "member_id": link.member_id,
            "kind": link.kind,
            "system": link.system,
            "value": value,
            "value_key": value_key,
            "assigner": link.assigner,
            "decision_id": link.decision_id,
            "recorded_by": link.recorded_by,
            "valid_from": self.timestamp(link.valid_from),
            "valid_to": None if link.valid_to is None else self.timestamp(link.valid_to),
        }


class SqlMatchWrites:
    """The writes of one ``$member-match`` in its unit of work (``SqlIdentityStore.match_writes``):
    the attempt, the decision with its evidence, review case and audit event, the UMB
    handed out and the identity-graph links. All of it commits, or none of it."""

    def __init__(
        self, unit: SqlUnitOfWork, sql: IdentitySql, keyring: DataKeyring, links: SealedLinks
    ) -> None:
        self._unit = unit
        self._cursor = unit.cursor()
        self._sql = sql
        self._keyring = keyring
        self._links = links
        self._sources: dict[str, str] = {}  # the source of each Patient read

    def note_attempt(
        self,
        *,
        client_id: ClientId,
        demographics_key: str,
        card_key: str,
        at: datetime,
        window: timedelta,
    ) -> list[datetime]:
        """Record an attempt; the last attempt time of each distinct card this client
        tried with these demographics within the window (this one included), oldest
        first."""
        sql, cursor = self._sql, self._cursor
        keys = {"client_id": client_id, "demographics_key": demographics_key}
        cursor.execute(sql.attempt, {**keys, "card_key": card_key, "at": sql.timestamp(at)})
        cursor.execute(sql.cards_tried, {**keys, "since": sql.timestamp(at - window)})
        times = [sql.read_timestamp(row[0]) for row in cursor.fetchall()]
        return [time for time in times if time is not None]

    def record_decision(
        self,
        decision: MatchDecision,
        *,
        client_id: ClientId,
        request_key: str,
        review: ReviewOpening | None,
        event: AuditEvent,
    ) -> None:
        """The decision with its evidence, its audit event and, for ``review``, its case."""
        sql, cursor = self._sql, self._cursor
        cursor.execute(sql.decision, sql.decision_row(decision, client_id, request_key))
        if decision.outcome is MatchOutcome.REVIEW:
            assert review is not None
            row = sql.review_row(decision, review, client_id, request_key, self._keyring)
            cursor.execute(sql.review, row)
        self._unit.record(event)

    def patient(self, member_id: MemberId) -> dict[str, Any] | None:
        """The member's Patient as stored (locked until the transaction ends on PostgreSQL)."""
        self._cursor.execute(self._sql.patient, {"ref": f"Patient/{member_id}"})
        row = self._cursor.fetchone()
        if row is None:
            return None
        self._sources[member_id] = row[1]
        body = at_rest(self._unit).open(row[0], RESOURCE_BODY, f"Patient/{member_id}")
        return dict(orjson.loads(body))

    def resource_types(self, member_id: MemberId) -> set[str]:
        self._cursor.execute(self._sql.resource_types, {"patient_id": member_id})
        return {row[0] for row in self._cursor.fetchall()}

    def assign_identifier(
        self, patient: dict[str, Any], identifier: dict[str, Any], *, at: datetime
    ) -> None:
        """Add an identifier (the UMB we hand out) to the Patient just read and index it."""
        member_id = patient["id"]
        source = self._sources[member_id]
        resource = {**patient, "identifier": [*(patient.get("identifier") or []), identifier]}
        row = ResourceRow.from_resource(resource, member_id)
        sql, cursor, keys = self._sql, self._cursor, at_rest(self._unit)
        cursor.execute(
            sql.rewrite_resource,
            {
                "patient_id": member_id,
                "last_updated": sql.timestamp(at),
                "source": source,
                "body": keys.seal_bytes(row.body, RESOURCE_BODY, row.ref),
                "ref": row.ref,
            },
        )
        cursor.execute(*sql.drop_tokens([row.ref]))
        tokens = [
            {
                "ref": row.ref,
                "resource_type": row.resource_type,
                "param": param,
                "system": system,
                "value": "",
                "value_key": keys.token_key(value),
            }
            for param, system, value in row.tokens
        ]
        insert_rows(cursor, (sql.tokens, tokens))

    def add_links(self, links: Sequence[IdentityLink]) -> None:
        """Add links; a link already current is kept as it is."""
        sql, cursor = self._sql, self._cursor
        current: set[tuple[str, str, str, str]] = set()
        for member_id in {link.member_id for link in links}:
            cursor.execute(sql.current_links, {"member_id": member_id})
            current.update((member_id, *row) for row in cursor.fetchall())
        new = []
        for link in links:
            key = (link.member_id, link.kind, link.system, self._links.key_of(link.value))
            if key not in current:
                current.add(key)
                new.append(sql.link_row(link, self._links))
        if new:
            cursor.executemany(sql.link, new)
