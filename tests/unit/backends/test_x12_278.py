"""The X12 reader on 278 review responses (005010X217), which pyx12 has no map for: the
loop table of ``x12_loops`` places their segments (the hand-written examples of the
x12-278-prior-auth mapping, and variants of them)."""

from __future__ import annotations

import io
from typing import Any

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.x12 import read_x12

EXAMPLES = BUILT_IN_MAPPINGS / "x12-278-prior-auth/1.0.0/examples"


def records(text: str) -> list[SourceRecord | RecordProblem]:
    return list(read_x12(io.BytesIO(text.encode()), "f.278", {"kinds": ["278"]}))


def event_of(data: dict[str, Any]) -> dict[str, Any]:
    subscriber = data["2000A"][0]["2000B"][0]["2000C"][0]
    holder = subscriber["2000D"][0] if "2000D" in subscriber else subscriber
    (event,) = holder["2000E"]
    return dict(event)


def test_a_278_event_holds_its_providers_and_services_each_with_its_own_segments() -> None:
    (record,) = records((EXAMPLES / "services.278").read_text())
    assert isinstance(record, SourceRecord)
    assert record.kind == "278" and record.key == "SBXPLAN|PA0042"
    assert record.data["validation"] == "envelope"
    event = event_of(record.data)
    # UM03 (service type) is a simple element, UM04 (facility) a composite.
    assert event["UM"] == [
        {"UM01": "HS", "UM02": "I", "UM03": "PT", "UM04": ["11", "B"], "UM06": "E"}
    ]
    assert [nm1["NM1"][0]["NM101"] for nm1 in event["2010EA"]] == ["SJ"]
    certified, pended = event["2000F"]
    assert certified["HCR"] == [{"HCR01": "A1", "HCR02": "AUTH240112001"}]
    assert certified["SV1"][0]["SV101"] == ["HC", "97110", "GP"]
    assert certified["HSD"] == [{"HSD01": "VS", "HSD02": "12"}]
    assert "2010F" not in certified
    assert pended["HCR"] == [{"HCR01": "A4"}]
    assert pended["2010F"][0]["NM1"][0]["NM109"] == "1679576722"


def test_a_dependent_event_sits_under_its_2000d_loop() -> None:
    (record,) = records((EXAMPLES / "admission.278").read_text())
    assert isinstance(record, SourceRecord)
    subscriber = record.data["2000A"][0]["2000B"][0]["2000C"][0]
    assert subscriber["2000D"][0]["2010D"][0]["NM1"][0]["NM104"] == "LUCAS"
    event = event_of(record.data)
    assert event["HCR"] == [{"HCR01": "A1", "HCR02": "AUTH240112002"}]
    assert [d["DTP01"] for d in event["DTP"]] == ["AAH", "435"]
    assert event["2010EA"][0]["NM1"][0]["NM101"] == "FA"


def test_two_events_of_one_subscriber_are_two_records_and_hcr04_is_a_plain_value() -> None:
    text = (EXAMPLES / "denied.278").read_text()
    second = "HL*6*3*EV*0~\nTRN*2*PA0046*1497758544~\nUM*SC*I*2*22:B**E~\nHCR*A1*AUTH46**Y~\n"
    text = text.replace("SE*19*0001", second + "SE*23*0001")
    found = records(text)
    assert all(isinstance(r, SourceRecord) for r in found), found
    assert [r.key for r in found if isinstance(r, SourceRecord)] == [
        "SBXPLAN|PA0044",
        "SBXPLAN|PA0046",
    ]
    last = found[1]
    assert isinstance(last, SourceRecord)
    assert event_of(last.data)["HCR"] == [{"HCR01": "A1", "HCR02": "AUTH46", "HCR04": "Y"}]
    assert "2000F" not in event_of(last.data)


def test_every_example_is_read() -> None:
    for path in sorted(EXAMPLES.glob("*.278")):
        found = records(path.read_text())
        assert found and all(isinstance(r, SourceRecord) for r in found), path.name
