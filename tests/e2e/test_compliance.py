"""The compliance report end to end (ADR 0037): one exchange asks in time and is met;
one partner sits in a maintenance window while an exchange whose member enrolled ten days
ago waits for it, and the report shows that exchange missed with the reason, over HTTP
(JSON, CSV) and from the command line; a third member, held the same way, revokes the
opt-in and their exchange's row reads closed, not missed; the old payer's answers are
shown apart, as observed, never as our duty; the report names the plan and keeps each
rule's citation and caveat; the old payer's report shows the $member-match it answered;
the met subjects listed up to ``_subjects``; bad input is refused with the reason."""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.security.model import AUDITOR_SCOPE
from tests.e2e.test_exchange import (
    add_partner,
    network,  # noqa: F401 (the module's network fixture)
    start_payers,
    submit,
    switcher_to,
    wait_terminal,
    wait_until,
)
from tests.servers import ServerProcess


def _enrolled(request: dict[str, Any], day: date) -> dict[str, Any]:
    """The request with the member covered and opted in from ``day``."""
    request = copy.deepcopy(request)
    request["new_coverage"]["start"] = day.isoformat()
    request["consent"]["start"] = day.isoformat()
    return request


def _by_obligation(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["obligation"]: entry for entry in report["obligations"]}


def test_the_report_shows_one_exchange_met_and_one_held_by_its_partner_missed(
    server: Callable[..., ServerProcess],
    network: Path,  # noqa: F811
) -> None:
    old, new, info = start_payers(server, network)
    today = datetime.now(UTC).date()
    slow = "slow-plan"  # the old payer again, in a maintenance window for hours
    add_partner(new, old, info, slow)
    now = datetime.now(UTC)
    window = {"start": now.isoformat(), "end": (now + timedelta(hours=3)).isoformat()}
    with new.client() as client:
        put = client.put(
            f"/partners/{slow}/operations",
            json={"maintenance": [{**window, "reason": "datacenter move"}]},
        )
        assert put.status_code == 200, put.text
        met = submit(client, _enrolled(switcher_to(network, 0)["request"], today))
        held_request = _enrolled(switcher_to(network, 1, slow)["request"], today - timedelta(10))
        held = submit(client, held_request)
        gone_request = _enrolled(switcher_to(network, 2, slow)["request"], today - timedelta(10))
        gone = submit(client, gone_request)
        assert wait_terminal(client, met)["state"] == "completed"
        wait_until(client, held, lambda e: e["next_retry_at"] is not None, timeout=30)
        waiting = wait_until(client, gone, lambda e: e["next_retry_at"] is not None, timeout=30)
        revoked = client.post(f"/consents/{waiting['consent_id']}/$revoke")
        assert revoked.status_code == 200, revoked.text
        met_id, held_id = met.rsplit("/", 1)[1], held.rsplit("/", 1)[1]
        gone_id = gone.rsplit("/", 1)[1]

        span = {
            "from": (today - timedelta(20)).isoformat(),
            "to": (today + timedelta(1)).isoformat(),
        }
        response = client.get("/compliance/report", params=span)
        assert response.status_code == 200, response.text
        shown = _by_obligation(response.json())
        request = shown[REQUEST_AFTER_ENROLMENT]
        assert met_id in [s["subject_id"] for s in request["met"]["subjects"]]
        (missed,) = request["missed"]["subjects"]
        assert (missed["subject_id"], missed["partner_id"]) == (held_id, slow)
        assert missed["reason"] == "maintenance" and "overdue" in missed["why"]
        assert request["missed"]["reasons"] == {"maintenance": 1}
        # The member who revoked: no longer owed, counted apart, neither met nor missed.
        (closed,) = request["closed"]["subjects"]
        assert (closed["subject_id"], closed["reason"]) == (gone_id, "opt-in-revoked")
        assert closed["closed_at"] is not None and request["counts"]["closed"] == 1
        # The old payer's answer, as we saw it: observed apart, not our duty.
        report = response.json()
        (answer,) = report["partners_observed"]["obligations"]
        assert (answer["obligation"], answer["duty"]) == (ANSWER_WITHIN, "partner-observed")
        assert met_id in [s["subject_id"] for s in answer["met"]["subjects"]]
        assert shown[ANSWER_WITHIN]["duty"] == "ours-as-old-payer"
        assert shown[ANSWER_WITHIN]["counts"]["met"] == 0  # this payer answered nothing
        assert report["totals"]["missed"] == 1  # ours: the held exchange only
        assert report["plan"]["npi"] and report["plan"]["name"] and report["plan"]["base_url"]
        assert report["software"]["version"] and report["calendar_zone"] == "America/New_York"
        assert request["source"]["citation"] == "42 CFR 422.121(b)(4)"
        assert request["source"]["status"] == "not yet confirmed"
        assert "being confirmed" in request["source"]["caveat"]

        assert request["met"]["truncated"] is False and request["missed"]["truncated"] is False
        first = client.get("/compliance/report", params={**span, "_subjects": "0"})
        assert first.status_code == 200, first.text
        none = _by_obligation(first.json())[REQUEST_AFTER_ENROLMENT]
        assert none["met"]["subjects"] == [] and none["met"]["truncated"] is True
        assert none["counts"] == request["counts"] and len(none["missed"]["subjects"]) == 1

        as_csv = client.get("/compliance/report", params={**span, "_format": "csv"})
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
        lines = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert {"obligation": REQUEST_AFTER_ENROLMENT, "standing": "missed"}.items() <= next(
            line for line in lines if line["subject_id"] == held_id
        ).items()
        observed = next(
            line
            for line in lines
            if line["subject_id"] == met_id and line["obligation"] == ANSWER_WITHIN
        )
        assert observed["duty"] == "partner-observed" and observed["confirmation"]
        assert {line["plan_npi"] for line in lines} == {report["plan"]["npi"]}
        assert {line["caveat"] != "" for line in lines} == {True}

        for params, problem in (
            ({"from": span["from"]}, "'to' is required"),
            ({**span, "to": "2027-13-01"}, "'to' must be a date"),
            ({**span, "from": span["to"]}, "'from' must be before 'to'"),
            ({"from": "2020-01-01", "to": span["to"]}, "at most 366 days"),
            ({**span, "_format": "xml"}, "_format: one of json, csv"),
            ({**span, "member": "x"}, "member: unknown parameter"),
            ({**span, "_subjects": "all"}, "'_subjects' must be a whole number from 0 to"),
            ({**span, "_subjects": "100000"}, "'_subjects' must be a whole number from 0 to"),
        ):
            refused = client.get("/compliance/report", params=params)
            assert refused.status_code == 400, (params, refused.text)
            outcome = refused.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert problem in outcome["issue"][0]["details"]["text"], outcome
            if "_subjects" in params:
                assert outcome["issue"][0]["expression"] == ["_subjects"], outcome

    listed = new.cli("compliance", "report", "--from", span["from"], "--to", span["to"])
    assert listed.returncode == 0, listed.stderr
    assert f"missed   exchange {held_id} partner {slow}: maintenance" in listed.stdout
    ours, observed_part = listed.stdout.split("PARTNERS' ANSWER TIMES (observed)")
    assert "OUR DUTIES" in ours and held_id in ours and "[not yet confirmed]" in ours
    assert held_id not in observed_part
    as_json = new.cli(
        "compliance", "report", "--from", span["from"], "--to", span["to"], "--format", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    assert (
        _by_obligation(orjson.loads(as_json.stdout))[REQUEST_AFTER_ENROLMENT]["counts"]["missed"]
        == 1
    )
    bad = new.cli("compliance", "report", "--from", span["to"], "--to", span["from"])
    assert bad.returncode == 2 and "'from' must be before 'to'" in bad.stderr
    limited = new.cli(
        "compliance", "report", *("--from", span["from"], "--to", span["to"]), "--subjects", "x"
    )
    assert limited.returncode == 2 and "'--subjects' must be a whole number" in limited.stderr
    as_csv_cli = new.cli(
        "compliance", "report", "--from", span["from"], "--to", span["to"], "--format", "csv"
    )
    assert as_csv_cli.returncode == 0, as_csv_cli.stderr
    keys = ("obligation", "standing", "subject_id")  # the same rows, streamed by either
    from_cli = list(csv.DictReader(io.StringIO(as_csv_cli.stdout)))
    assert [[line[k] for k in keys] for line in from_cli] == [
        [line[k] for k in keys] for line in lines
    ]

    # The old payer answered the $member-match at once: its one-business-day row is met.
    with old.client() as client:  # as the partner's reader: not its report to see
        assert client.get("/compliance/report", params=span).status_code == 403
    old.authorize("auditor", scope=AUDITOR_SCOPE)
    with old.client() as client:
        answered = _by_obligation(client.get("/compliance/report", params=span).json())
    assert answered[ANSWER_WITHIN]["counts"]["met"] >= 1
    assert {s["subject_type"] for s in answered[ANSWER_WITHIN]["met"]["subjects"]} == {"request"}
