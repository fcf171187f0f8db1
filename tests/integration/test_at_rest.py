"""The keys travel with the engine (ADR 0044): a path on an engine that was given none
refuses, naming why, rather than writing or reading member data in the clear; the keys
given to a platform's engine reach a unit of work and a connection of it alike."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from payerbridge.bootstrap import Platform
from payerbridge.errors import DataKeyUnavailable
from payerbridge.store.at_rest import at_rest
from payerbridge.store.members import ResourceRow, write_batch
from payerbridge.store.unit_of_work import sql_unit
from tests.builders import a_patient


def test_an_engine_given_no_keys_neither_writes_nor_reads_member_data() -> None:
    engine = create_engine("sqlite://")
    try:
        with pytest.raises(DataKeyUnavailable, match="no data keys are attached"):
            at_rest(engine)
        row = ResourceRow.from_resource(a_patient("p1"), "p1")
        with (
            engine.begin() as connection,
            pytest.raises(DataKeyUnavailable, match="no data keys are attached"),
        ):
            write_batch(connection, [row], source="test", at=None)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_platforms_unit_connection_and_reader_share_one_set_of_keys(platform: Platform) -> None:
    keys = at_rest(platform.engine)
    with platform.transactions.begin() as unit:
        assert at_rest(sql_unit(unit)) is keys
        assert at_rest(sql_unit(unit).connection) is keys
    with platform.engine.connect() as connection:
        assert at_rest(connection) is keys
