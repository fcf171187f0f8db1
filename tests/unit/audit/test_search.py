"""The AuditEvent search's parameters: each read, every bad one named, none ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payerbridge.audit.model import AuditQuery
from payerbridge.audit.search import audit_query
from payerbridge.errors import InvalidInput


def test_every_parameter_is_read() -> None:
    query = audit_query(
        [
            ("patient", "Patient/m-1"),
            ("agent", "plan-a"),
            ("subtype", "https://payerbridge.dev/CodeSystem/audit-action|patient.everything"),
            ("date", "ge2026-03-01"),
            ("date", "lt2026-03-02T12:00:00Z"),
            ("_count", "10"),
            ("_cursor", "991"),
        ]
    )
    assert query == AuditQuery(
        entity=("Patient", "m-1"),
        agent="plan-a",
        action="patient.everything",
        start=datetime(2026, 3, 1, tzinfo=UTC),
        end=datetime(2026, 3, 2, 12, tzinfo=UTC),
        count=10,
        before=991,
    )
    assert audit_query([("entity", "Exchange/x-1")]).entity == ("Exchange", "x-1")
    assert audit_query([("patient", "m-2")]).entity == ("Patient", "m-2")


def test_every_bad_parameter_is_named() -> None:
    with pytest.raises(InvalidInput) as refused:
        audit_query(
            [
                ("who", "x"),
                ("patient", "Patient/a/b"),
                ("entity", "exchange"),
                ("date", "yesterday"),
                ("_count", "201"),
                ("_cursor", "-1"),
                ("agent", ""),
                ("subtype", "Not An Action"),
                ("date", "2026-01-01"),
                ("date", "2026-01-02"),
            ]
        )
    found = [(i.expression, i.code) for i in refused.value.issues]
    assert found == [
        ("who", "not-supported"),
        ("patient", "invalid"),
        ("entity", "invalid"),
        ("date", "invalid"),
        ("_count", "invalid"),
        ("_cursor", "invalid"),
        ("agent", "required"),
        ("subtype", "invalid"),
        ("date", "invalid"),  # a third date
    ]
    with pytest.raises(InvalidInput, match="bad parameters"):
        audit_query([("patient", "m-1"), ("entity", "Exchange/x")])
