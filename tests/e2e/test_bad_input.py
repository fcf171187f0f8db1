"""Bad input over real HTTP: each gets a clear OperationOutcome and nothing is stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import orjson
import pytest

from payerbridge.security.model import EXCHANGES_SCOPE, OPERATOR_SCOPE
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.servers import REQUESTER_SCOPES, ServerProcess, new_key

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def shared_payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """One server the module's tests share. None of them registers a partner, so no
    exchange can be stored by any of them; each test calls as a client of its own."""
    data = tmp_path_factory.mktemp("bad-input") / "members.ndjson"
    data.write_bytes(
        b"\n".join(
            orjson.dumps(r)
            for r in (
                a_patient(),
                a_coverage(),
                # Two members alike in everything but the card (member ids far apart: a number
                # one digit away would be a typo the engine cannot tell from the other member).
                a_patient("twin", given="Ana"),
                a_coverage("c2", patient="twin", member_id="Z98765"),
            )
        )
    )
    return module_server(
        "payer",
        env={"PAYERBRIDGE_MAX_REQUEST_BYTES": "20000", "PAYERBRIDGE_ORG_NPI": "1245319599"},
        import_files=[data],
    )


@pytest.fixture
def payer(shared_payer: ServerProcess, request: pytest.FixtureRequest) -> ServerProcess:
    """The shared server, whose ``client()`` is this test's own client (a requesting
    payer that may also submit exchanges): ``GET /exchanges`` lists only its exchanges."""
    token = shared_payer.register_client(
        f"client-{request.node.name}",
        npi="1234567893",
        scope=f"{REQUESTER_SCOPES} {EXCHANGES_SCOPE}",
    )
    return dataclasses.replace(shared_payer, credential=token)


def outcome(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code, body
    assert response.headers["x-request-id"] in body["issue"][0]["diagnostics"]
    return " ".join(i["details"]["text"] for i in body["issue"])


def test_malformed_json_is_a_structure_error(payer: ServerProcess) -> None:
    with payer.client() as client:
        text = outcome(
            client.post("/fhir/Patient/$member-match", content=b"{oops", headers=FHIR),
            400,
            "structure",
        )
        assert "not valid JSON" in text
        outcome(
            client.post(
                "/exchanges",
                content=b"{oops",
                headers={"Content-Type": "application/json", **new_key()},
            ),
            400,
            "structure",
        )


def test_wrong_resource_type_is_invalid(payer: ServerProcess) -> None:
    with payer.client() as client:
        text = outcome(
            client.post("/fhir/Patient/$member-match", json=a_patient(), headers=FHIR),
            400,
            "invalid",
        )
        assert "expected resourceType 'Parameters', got 'Patient'" in text


def test_oversize_bodies_get_413_whether_declared_or_streamed(payer: ServerProcess) -> None:
    big = b'{"resourceType":"Parameters","parameter":[],"pad":"' + b"x" * 30000 + b'"}'
    with payer.client() as client:
        text = outcome(
            client.post("/fhir/Patient/$member-match", content=big, headers=FHIR), 413, "too-long"
        )
        assert "20000 bytes" in text

        def chunks():  # no Content-Length: the limit is enforced while reading
            for start in range(0, len(big), 4096):
                yield big[start : start + 4096]

        outcome(
            client.post("/fhir/Patient/$member-match", content=chunks(), headers=FHIR),
            413,
            "too-long",
        )


def test_unknown_partner_is_refused_and_no_exchange_is_stored(payer: ServerProcess) -> None:
    with payer.client() as client:
        text = outcome(
            client.post("/exchanges", json=an_exchange_request("nobody"), headers=new_key()),
            422,
            "not-found",
        )
        assert "no partner is registered with id 'nobody'" in text
        assert client.get("/exchanges").json()["total"] == 0
    operator = payer.register_client("ops-test_unknown_partner", scope=OPERATOR_SCOPE)
    with payer.client_with(operator) as ops:
        assert ops.get("/partners").json() == []


def test_a_bad_exchange_search_names_each_parameter(payer: ServerProcess) -> None:
    with payer.client() as client:
        refused = client.get(
            "/exchanges",
            params=[("state", "done"), ("name", "Ana"), ("created", "soon"), ("_count", "0")],
        )
        assert refused.status_code == 400, refused.text
        issues = refused.json()["issue"]
        assert [(i["expression"][0], i["code"]) for i in issues] == [
            ("state", "invalid"),
            ("name", "not-supported"),
            ("created", "invalid"),
            ("_count", "invalid"),
        ]
        cursor = client.get("/exchanges", params={"_cursor": "forged"})
        assert "follow the 'next' link" in outcome(cursor, 400, "invalid")
        assert "next" in outcome(client.get("/exchanges?_offset=50"), 400, "not-supported")


def test_invalid_exchange_fields_are_named(payer: ServerProcess) -> None:
    request = an_exchange_request()
    request["member"]["birth_date"] = "1980-13-45"
    del request["member"]["family"]
    without_opt_in = an_exchange_request()
    del without_opt_in["consent"]
    with payer.client() as client:
        response = client.post("/exchanges", json=request, headers=new_key())
        no_consent = client.post("/exchanges", json=without_opt_in, headers=new_key())
        assert client.get("/exchanges").json()["total"] == 0
    body = response.json()
    assert response.status_code == 400
    expressions = {i["expression"][0] for i in body["issue"]}
    assert {"member.birth_date", "member.family"} <= expressions
    assert any(i["code"] == "required" for i in body["issue"])
    assert no_consent.status_code == 400
    assert "exactly one of consent (the opt-in) or consent_id" in no_consent.text


def test_content_negotiation(payer: ServerProcess) -> None:
    with payer.client() as client:
        outcome(
            client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}),
            406,
            "not-supported",
        )
        outcome(client.get("/fhir/metadata?_format=xml"), 406, "not-supported")
        assert client.get("/fhir/metadata?_format=json").status_code == 200
        outcome(
            client.post(
                "/fhir/Patient/$member-match",
                content=b"<Parameters/>",
                headers={"Content-Type": "application/fhir+xml"},
            ),
            415,
            "not-supported",
        )
        # $member-match is a plain route (ADR 0006) and negotiates content itself.
        outcome(
            client.post(
                "/fhir/Patient/$member-match",
                json=member_match_parameters(),
                headers={**FHIR, "Accept": "application/fhir+xml"},
            ),
            406,
            "not-supported",
        )
        outcome(
            client.post(
                "/fhir/Patient/$member-match?_format=xml",
                json=member_match_parameters(),
                headers=FHIR,
            ),
            406,
            "not-supported",
        )
        outcome(client.get("/fhir/Nope/1"), 404, "not-supported")
        outcome(client.get("/fhir/Patient/unknown"), 404, "not-found")
        outcome(client.get("/no/such/route"), 404, "not-found")


def test_an_overlong_idempotency_key_is_named(payer: ServerProcess) -> None:
    with payer.client() as client:
        for path, call in (
            (
                "/fhir/Patient/$member-match",
                lambda key: client.post(
                    "/fhir/Patient/$member-match",
                    json=member_match_parameters(),
                    headers={**FHIR, "Idempotency-Key": key},
                ),
            ),
            (
                "/fhir/Patient/p1/$everything",
                lambda key: client.get(
                    "/fhir/Patient/p1/$everything", headers={"Idempotency-Key": key}
                ),
            ),
            (
                "/exchanges",
                lambda key: client.post(
                    "/exchanges",
                    json={**an_exchange_request(), "old_payer": "unregistered"},
                    headers={"Idempotency-Key": key},
                ),
            ),
        ):
            text = outcome(call("k" * 201), 400, "invalid")
            assert "Idempotency-Key" in text and "200 printable" in text, path
            outcome(call("k\tk"), 400, "invalid")  # a tab: HTTP allows it, a key may not
            assert call("k" * 200).status_code in (200, 422), path


def test_request_id_is_echoed_or_generated(payer: ServerProcess) -> None:
    start = len(payer.log())  # what this test's requests log, not the others'
    with payer.client() as client:
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )
        generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
        assert generated.headers["x-request-id"] != "bad id"
        assert len(generated.headers["x-request-id"]) == 36
    assert '"request_id":"abc-123"' in payer.logged(start, '"request_id":"abc-123"')


def test_member_match_outcomes_are_422_with_hrex_codes(payer: ServerProcess) -> None:
    def parameters(**member: str) -> dict:
        return member_match_parameters(an_exchange_request(**member))

    with payer.client() as client:
        matched = client.post("/fhir/Patient/$member-match", json=parameters(), headers=FHIR)
        assert matched.status_code == 200, matched.text
        names = [p["name"] for p in matched.json()["parameter"]]
        assert names == ["MemberIdentifier", "MemberId"]
        umb = matched.json()["parameter"][0]["valueIdentifier"]["value"]
        # The identifier handed out finds the member, with or without its system.
        found = client.get("/fhir/Patient", params={"identifier": umb}).json()
        matched = [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"]
        assert matched == ["p1"]
        again = client.post("/fhir/Patient/$member-match", json=parameters(), headers=FHIR)
        assert again.json()["parameter"][0]["valueIdentifier"]["value"] == umb

        stranger = an_exchange_request(given=["Zed"], family="Other", birth_date="1999-01-01")
        stranger["old_coverage"] = {
            "member_id": "X999",
            "subscriber_id": "S9",
            "relationship": "self",
        }
        outcome(
            client.post(
                "/fhir/Patient/$member-match", json=member_match_parameters(stranger), headers=FHIR
            ),
            422,
            "not-found",
        )
        twins = parameters()
        coverage = twins["parameter"][1]["resource"]
        del coverage["identifier"]  # subscriber id only: both twins share it
        outcome(
            client.post("/fhir/Patient/$member-match", json=twins, headers=FHIR),
            422,
            "multiple-matches",
        )


def test_logs_never_carry_member_demographics(payer: ServerProcess) -> None:
    start = len(payer.log())  # what this test's requests log, not the others'
    test_member_match_outcomes_are_422_with_hrex_codes(payer)
    log = payer.log()[start:]
    for secret in ("Garcia", "1980-02-03", "M123", 'S1"'):
        assert secret not in log
