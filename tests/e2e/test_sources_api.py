"""A replicated source's files pushed over HTTP by an operator (``POST
/sources/{id}/files``), on a real server and database: mapped and kept with the report,
the same file again changes nothing, the push audited; others are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from payerbridge.store.tables import audit_events
from tests.servers import REQUESTER_SCOPES, ServerProcess

CSV = (
    b"member_id,row_id,problem_code,onset_date,resolved_date,recorded_date\n"
    b"M1,R1,HTN,20200101,,\nM1,R2,NOPE,20200101,,\n"
)


def test_an_operator_pushes_a_file_and_sees_what_it_gave(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nid = "clinical"\nmode = "replicated"\nmapping = "csv-conditions@1.0.0"\n'
    )
    old_payer = server("old", env={"PAYERBRIDGE_SOURCES_FILE": str(sources)})
    operator = old_payer.authorize("ops")
    with operator.client() as http:
        listed = http.get("/sources").json()["sources"]
        assert [s["id"] for s in listed] == ["store", "clinical"]
        assert listed[1]["source_format"] == "customtx"

        pushed = http.post(
            "/sources/clinical/files", params={"name": "conditions.csv"}, content=CSV
        )
        assert pushed.status_code == 201, pushed.text
        report = pushed.json()
        assert report["resources"] == {"Condition": 1, "Provenance": 1}
        (problem,) = report["problems"]
        assert problem["location"]["line"] == 3 and "'NOPE'" in problem["text"]

        again = http.post("/sources/clinical/files", params={"name": "again.csv"}, content=CSV)
        assert again.status_code == 200 and again.json()["duplicate"]
        (kept,) = http.get("/sources/clinical/files").json()["files"]
        assert kept["name"] == "conditions.csv"

        missing = http.post("/sources/labs/files", params={"name": "x.csv"}, content=CSV)
        assert missing.status_code == 404
        unnamed = http.post("/sources/clinical/files", content=CSV)
        assert unnamed.status_code == 400

    requester = old_payer.authorize("newplan", scope=REQUESTER_SCOPES)
    with requester.client() as http:
        assert (
            http.post("/sources/clinical/files", params={"name": "x.csv"}, content=CSV).status_code
            == 403
        )
        assert http.get("/sources").status_code == 403

    with old_payer.platform() as platform, platform.engine.connect() as connection:
        events = connection.execute(
            select(audit_events.c.actor, audit_events.c.outcome).where(
                audit_events.c.action == "source.ingest"
            )
        ).all()
    assert sorted(outcome for _, outcome in events) == ["duplicate", "mapped"]
    assert {actor for actor, _ in events} == {"ops"}
