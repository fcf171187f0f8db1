"""Reading a partner's CapabilityStatement for routing: guides and their versions,
operations by their definitions, and what changed between two readings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.api.capability import OurServer, capability_statement
from payerbridge.routing.capabilities import Capabilities, changes, read_capabilities
from tests import fhir_profiles

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HREX = "http://hl7.org/fhir/us/davinci-hrex"
PDEX = "http://hl7.org/fhir/us/davinci-pdex"


def our_statement(**options: Any) -> dict[str, Any]:
    """Our own CapabilityStatement, as a payerbridge partner serves it."""
    server = OurServer(
        fhir_base="https://us.example/fhir",
        token_url="https://us.example/auth/token",
        software_version="1.0",
        org_name="Us",
        **options,
    )
    return capability_statement(server, published=AT)


def statement(*operations: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {"mode": "server", "resource": [{"type": "Patient", "operation": list(operations)}]}
        ],
        **more,
    }


def test_an_hrex_1_0_0_server_is_read_from_its_operation_definition_version() -> None:
    reading = read_capabilities(
        statement(
            {
                "name": "member-match",
                "definition": f"{HREX}/OperationDefinition/member-match|1.0.0",
            },
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            },
        ),
        at=AT,
        endpoints={"token": "https://auth.old.example/token"},
    )
    assert reading.guides == {"hrex": "1.0.0"}
    assert reading.operations == {"member-match", "everything"}
    assert reading.fhir_version == "4.0.1" and reading.endpoints["token"].endswith("/token")


def test_the_guides_own_canonical_wins_over_an_operations_version() -> None:
    reading = read_capabilities(
        statement(
            {
                "name": "member-match",
                "definition": f"{HREX}/OperationDefinition/member-match|1.0.0",
            },
            implementationGuide=[
                f"{HREX}/ImplementationGuide/hl7.fhir.us.davinci-hrex|1.1.0",
                f"{PDEX}/ImplementationGuide/hl7.fhir.us.davinci-pdex",
            ],
            instantiates=[f"{PDEX}/CapabilityStatement/pdex-server|2.1.0"],
        ),
        at=AT,
    )
    assert reading.guides == {"hrex": "1.1.0", "pdex": "2.1.0"}


def test_our_own_capability_statement_reads_as_what_we_serve() -> None:
    ours = our_statement()
    # A Bulk Data server (IG v2.0.0), as its clients and test kit check before exporting.
    assert ours["instantiates"] == [
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data|2.0.0",
        "http://hl7.org/fhir/us/davinci-pdex/CapabilityStatement/pdex-provider-access-server",
    ]
    reading = read_capabilities(ours, at=AT)
    assert {"member-match", "everything"} <= reading.operations
    assert {"hrex", "pdex"} <= set(reading.guides)
    assert reading.software == "payerbridge 1.0"
    assert Capabilities.from_json(json.loads(json.dumps(reading.to_json()))) == reading


def test_the_pdex_reference_capability_statement_is_read() -> None:
    document = fhir_profiles.load("pdex-2.1.0", "CapabilityStatement-pdex-server")
    reading = read_capabilities(document, at=AT)
    assert "member-match" in reading.operations and "pdex" in reading.guides
    assert reading.guides["hrex"] is None  # named through member-match, without a version


def test_changes_between_readings_are_said_one_per_line() -> None:
    guides: dict[str, str | None] = {"hrex": "1.1.0", "pdex": "2.1.0"}
    offered = frozenset({"member-match", "everything"})
    before = Capabilities(AT, "4.0.1", guides, offered, endpoints={"token": "a"})
    guides = {"hrex": "1.0.0", "bulk-data": None}
    offered = frozenset({"member-match", "export"})
    after = Capabilities(AT, "4.0.1", guides, offered, endpoints={"token": "b"})
    assert changes(before, after) == [
        "now declares Bulk Data",
        "HRex 1.1.0 → 1.0.0",
        "no longer declares PDex",
        "dropped operation everything",
        "added operation export",
        "token endpoint changed",
    ]
    assert changes(after, after) == [] and changes(None, after) == ["first reading"]


@pytest.mark.parametrize(
    ("hrex", "pdex", "shape"),
    [
        ("1.0.0", "2.0.0", "1.0.0"),
        ("1.1.0", "2.1.0", "1.1.0"),
        (None, "2.0.0", "1.0.0"),
        (None, None, "1.2.0"),
    ],
)
def test_the_versions_we_declare_route_a_peer_of_ours_to_their_shape(
    hrex: str | None, pdex: str | None, shape: str
) -> None:
    from payerbridge.routing.route import decide_route

    reading = read_capabilities(our_statement(hrex_version=hrex, pdex_version=pdex), at=AT)
    assert (reading.guides["hrex"], reading.guides["pdex"]) == (hrex, pdex)
    route = decide_route("https://us.example/fhir", reading)
    assert route.shape.hrex == shape
    assert route.find_member == ("Patient?identifier=" if shape == "1.0.0" else "MemberId")


def test_a_server_without_everything_is_read_as_searchable_by_patient() -> None:
    reading = read_capabilities(our_statement(everything=False), at=AT)
    assert "everything" not in reading.operations and "member-match" in reading.operations
    assert {"Condition", "Coverage", "ExplanationOfBenefit"} <= reading.searchable
    assert "Patient" not in reading.searchable  # the Patient is searched by _id
    # Our audit trail is searched by patient too, for auditors: no part of the record.
    types = {r["type"] for r in our_statement()["rest"][0]["resource"]}
    assert "AuditEvent" in types and "AuditEvent" not in reading.searchable
    with_everything = read_capabilities(our_statement(), at=AT)
    assert changes(with_everything, reading) == ["dropped operation everything"]
    assert Capabilities.from_json(json.loads(json.dumps(reading.to_json()))) == reading
