"""Our audit events as BALP-styled AuditEvents (pure): the disclosure at the source and
at the recipient, a REST operation, an application activity; each field as BALP says."""

from __future__ import annotations

from datetime import datetime

from payerbridge.audit.chain import detail_text
from payerbridge.audit.model import StoredEvent
from payerbridge.fhir.audit_event import ACTIONS_SYSTEM, AuditObserver, audit_event_resource

US = AuditObserver("New Plan", "1234567893", "https://new.example/fhir")
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit"


def _stored(action: str, entity: tuple[str, str], outcome: str, **detail: object) -> StoredEvent:
    return StoredEvent(
        seq=42,
        at=datetime(2026, 3, 1, 9, 30),  # naive: SQLite's UTC
        actor="plan-b" if action != "exchange.transition" else "payerbridge",
        action=action,
        entity_type=entity[0],
        entity_id=entity[1],
        outcome=outcome,
        request_id="req-1",
        detail=detail_text(dict(detail)),
        leaf_hash="0" * 64,
        prev_hash="0" * 64,
        chain_hash="0" * 64,
    )


def test_data_leaving_is_a_privacy_disclosure_at_the_source() -> None:
    event = _stored("patient.everything", ("Patient", "m-1"), "success", entries=12)
    resource = audit_event_resource(event, US)
    assert resource["id"] == "42" and resource["recorded"] == "2026-03-01T09:30:00Z"
    assert resource["meta"] == {"profile": [f"{BALP}.PrivacyDisclosure.Source"]}
    assert resource["type"]["code"] == "110106" and resource["action"] == "R"
    assert [s["code"] for s in resource["subtype"]] == ["disclose", "patient.everything"]
    assert resource["subtype"][1]["system"] == ACTIONS_SYSTEM
    assert (
        resource["outcome"] == "0"
        and resource["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"
    )
    us, recipient = resource["agent"]
    assert (us["type"]["coding"][0]["code"], us["requestor"]) == ("110153", False)
    assert us["who"]["identifier"] == {"system": "http://hl7.org/fhir/sid/us-npi", "value": US.npi}
    assert (recipient["type"]["coding"][0]["code"], recipient["requestor"]) == ("110152", True)
    assert recipient["who"]["identifier"]["value"] == "plan-b"
    patient, request = resource["entity"]
    assert patient["what"] == {"reference": "Patient/m-1"}
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")
    assert patient["detail"] == [{"type": "payerbridge-detail", "valueString": '{"entries":12}'}]
    assert (
        request["type"]["code"] == "XrequestId"
        and request["what"]["identifier"]["value"] == "req-1"
    )
    assert resource["source"]["observer"]["display"] == "New Plan"


def test_data_arriving_is_a_privacy_disclosure_at_the_recipient() -> None:
    call = {"endpoint": "https://old.example/fhir", "status": 200}
    event = _stored(
        "exchange.transition", ("Exchange", "x-1"), "received", to="received", call=call
    )
    resource = audit_event_resource(event, US)
    assert resource["meta"] == {"profile": [f"{BALP}.PrivacyDisclosure.Recipient"]}
    assert (resource["type"]["code"], resource["action"]) == ("110107", "C")
    source, us = resource["agent"]
    assert source["network"] == {"address": "https://old.example/fhir", "type": "5"}
    assert (us["type"]["coding"][0]["code"], us["requestor"]) == ("110152", True)
    assert resource["entity"][0]["what"]["identifier"] == {
        "system": "urn:payerbridge:Exchange",
        "value": "x-1",
    }


def test_an_answer_and_an_activity() -> None:
    refused = audit_event_resource(_stored("member-match", ("Patient", "-"), "NoMatch"), US)
    assert refused["type"]["code"] == "rest" and refused["subtype"][0]["code"] == "operation"
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "NoMatch"
    assert "meta" not in refused and "purposeOfEvent" not in refused
    assert refused["agent"][0]["requestor"] is True  # the client asked
    assert refused["entity"][0]["name"] == "Patient"  # no member to name
    moved = audit_event_resource(_stored("exchange.transition", ("Exchange", "x"), "failed"), US)
    assert moved["type"]["code"] == "110100" and moved["outcome"] == "4"
    assert [a["who"]["display"] for a in moved["agent"]] == ["New Plan"]  # we did it
