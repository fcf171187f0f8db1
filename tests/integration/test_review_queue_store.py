"""Revision 0034 ranks the review cases opened before it as new ones are ranked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from alembic import command
from sqlalchemy import create_engine, inspect, text

from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.matching.decision import SINGLE_EXCHANGE, Matcher, decide
from payerbridge.identity.matching.model import DecisionId, MatchOutcome
from payerbridge.identity.matching.scoring import default_model
from payerbridge.identity.review_queue import review_opening
from payerbridge.types import MemberId
from tests.builders import a_coverage, a_patient
from tests.integration.test_migrations import _alembic

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def test_cases_opened_before_the_queue_was_ranked_are_ranked_from_their_evidence(
    tmp_path: Path, database_env: Callable[..., dict[str, str]]
) -> None:
    home = [{"use": "home", "line": ["12 Oak Street"], "postalCode": "62701"}]
    member = record_from_fhir(
        {**a_patient("p1", given="Noor", birth_date="1991-11-30"), "address": home},
        a_coverage("c1", patient="p1"),
    )
    request = record_from_fhir(
        {**a_patient("r", given="Nour", birth_date="1991-11-30", member_id=None), "address": home},
        None,
    )
    decision = decide(
        request,
        [(MemberId("p1"), member)],
        Matcher(default_model(), SINGLE_EXCHANGE),
        AT,
        DecisionId("d1"),
    )
    assert decision.outcome is MatchOutcome.REVIEW
    expected = review_opening("case-1", request, decision.evidence, decision.candidate_ids)

    env = database_env(empty=True)
    engine = create_engine(
        env.get("PAYERBRIDGE_DATABASE_URL") or f"sqlite:///{tmp_path / 'payerbridge.db'}"
    )
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0033")
            connection.execute(
                text(
                    "INSERT INTO identity_decisions (id, outcome, client_id, request_key, "
                    "policy_version, model_version, decided_at, evidence) VALUES ('d1', "
                    "'review', 'cli', 'k', :policy, 'm', :at, :evidence)"
                ),
                {
                    "policy": SINGLE_EXCHANGE.version,
                    "at": AT,
                    "evidence": orjson.dumps(decision.evidence.to_stored()).decode(),
                },
            )
            connection.execute(
                text(
                    "INSERT INTO identity_reviews (id, decision_id, status, client_id, "
                    "request_key, candidate_ids, opened_at) VALUES ('case-1', 'd1', 'open', "
                    "'cli', 'k', :candidates, :at)"
                ),
                {"candidates": orjson.dumps(list(decision.candidate_ids)).decode(), "at": AT},
            )

        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "0034")
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT version, risk, due_at, policy, opened_because, request_record "
                    "FROM identity_reviews"
                )
            ).one()
        due_at = (
            row.due_at if isinstance(row.due_at, datetime) else datetime.fromisoformat(row.due_at)
        )
        assert (row.version, row.risk, row.policy) == (1, expected.priority.risk, "single_exchange")
        assert due_at.replace(tzinfo=UTC) == expected.priority.due_at
        assert row.opened_because == decision.evidence.review_reason == "given_name_unconfirmed"
        assert row.request_record is None  # not kept before: the view shows the member alone

        with engine.begin() as connection:
            command.downgrade(_alembic(connection), "0033")
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("identity_reviews")}
        assert not {"version", "risk", "due_at", "request_record"} & columns
    finally:
        engine.dispose()
