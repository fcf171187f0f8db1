"""Every table declares its retention class, and the PHI columns it names exist: a table
added without one fails here (and stops start-up), instead of keeping member data that
no purge or erasure knows about."""

from __future__ import annotations

from payerbridge.compliance.model import CATALOGUE, Retention, phi_tables, undeclared
from payerbridge.store.tables import metadata


def test_every_table_of_the_schema_declares_a_retention_class() -> None:
    assert undeclared(metadata.tables) == []
    assert sorted(CATALOGUE.keys() - metadata.tables.keys()) == []


def test_the_phi_columns_named_exist_and_the_audit_holds_none() -> None:
    for name, entry in phi_tables().items():
        columns = metadata.tables[name].columns
        assert all(column in columns for column in entry.phi), name
        assert entry.retention not in (Retention.AUDIT, Retention.OPERATIONAL), name


def test_undeclared_names_what_is_missing() -> None:
    assert undeclared([*CATALOGUE, "zz_new_table", "aa_other"]) == ["aa_other", "zz_new_table"]
