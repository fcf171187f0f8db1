"""The thin slice end to end: a new payer and an old payer as real processes over HTTP."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge.security.model import EXCHANGES_SCOPE, OPERATOR_SCOPE
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_disclosure import follow
from tests.pki import CertificateAuthority
from tests.servers import (
    REQUESTER_SCOPES,
    ServerProcess,
    free_port,
    free_port_run,
    new_key,
)

HAPPY_PATH = [
    "submitted",
    "validated",
    "consent_verified",
    "route_selected",
    "member_matched",
    "retrieving",
    "received",
    "normalized",
    "completed",
]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    # Twelve switchers: the tests that share the module's payers each move members of
    # their own (see ``shared``).
    write_network(out, 1, 60, 7, date.today() - timedelta(days=1), switchers=12)
    return out


@pytest.fixture(scope="module")
def shared(
    module_server: Callable[..., ServerProcess], network: Path
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    """An old payer and a new one the module's tests share, the old one the new one's
    partner under its slug. A test that changes a partner registers the old payer (or one
    of its own) under a partner id of its own (``add_partner``), and every test moves
    switchers no other test moves, so that none sees another's exchanges or members."""
    return start_payers(module_server, network)


def start_payers(
    server: Callable[..., ServerProcess],
    network: Path,
    old_env: dict[str, str] | None = None,
    new_env: dict[str, str] | None = None,
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    info = orjson.loads((network / "network.json").read_bytes())
    old = start_old(server, network, old_env)
    new = server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NAME": info["platform"]["name"],
            "PAYERBRIDGE_ORG_NPI": info["platform"]["npi"],
            # The webhook tests' receivers listen on this machine.
            "PAYERBRIDGE_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
            **(new_env or {}),
        },
    )
    trust_new(old, new, info)
    add_partner(new, old, info, info["payers"][0]["slug"])
    return old, new, info


def start_old(
    server: Callable[..., ServerProcess], network: Path, env: dict[str, str] | None = None
) -> ServerProcess:
    """The old payer, holding the network's members."""
    old_info = orjson.loads((network / "network.json").read_bytes())["payers"][0]
    return server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NAME": old_info["name"],
            "PAYERBRIDGE_ORG_NPI": old_info["npi"],
            **(env or {}),
        },
        import_files=[network / old_info["file"]],
    )


def trust_new(old: ServerProcess, new: ServerProcess, info: dict[str, Any]) -> None:
    # The old payer registers the new one's key; the new one gets its own tokens.
    old.trust(new, "platform", npi=info["platform"]["npi"])
    # The tests read the old payer as a client of the same organization (the consents'
    # recipient), with a key of their own.
    old.authorize("platform-reader", npi=info["platform"]["npi"], scope=REQUESTER_SCOPES)


def add_partner(
    new: ServerProcess, old: ServerProcess, info: dict[str, Any], partner_id: str
) -> None:
    """The new payer adds the old one (which trusts it) as its partner ``partner_id``."""
    old_info = info["payers"][0]
    with new.client() as client:
        response = client.post(
            "/partners",
            json={
                "id": partner_id,
                "name": old_info["name"],
                "npi": old_info["npi"],
                "base_url": old.fhir_base,
                "client_id": "platform",
            },
        )
        assert response.status_code == 201, response.text


def switcher_to(network: Path, number: int, partner_id: str | None = None) -> dict[str, Any]:
    """The switcher ``number`` of the network, its request sent to ``partner_id`` when
    given (a partner id a test registered the old payer under)."""
    switcher: dict[str, Any] = orjson.loads((network / "switchers.json").read_bytes())[number]
    if partner_id is not None:
        switcher["request"] = {**switcher["request"], "old_payer": partner_id}
    return switcher


STOPPED = (
    "completed",
    "partial",
    "conflict",
    "failed",
    "blocked",
    "dead_lettered",
    "manual_review",
)


def submit(client: Any, request: dict[str, Any]) -> str:
    """POST /exchanges as the plan's own client; where to follow the accepted exchange."""
    response = client.post("/exchanges", json=request, headers=new_key())
    assert response.status_code == 202, response.text
    location: str = response.headers["location"]
    return location


def wait_terminal(client: Any, location: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exchange: dict[str, Any] = client.get(location).json()
        if exchange["state"] in STOPPED:
            return exchange
        time.sleep(0.1)
    raise AssertionError(f"exchange did not finish: {exchange}")


def test_an_exchange_moves_the_members_history_with_provenance(
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]], network: Path
) -> None:
    old, new, info = shared
    switcher = switcher_to(network, 0)
    logged_before = len(old.log()), len(new.log())  # what the payers logged before this test
    with new.client() as client:
        location = submit(client, switcher["request"])
        exchange = wait_terminal(client, location)
        assert exchange["state"] == "completed", exchange
        assert [step["to"] for step in exchange["history"]] == HAPPY_PATH
        stamps = [step["at"] for step in exchange["history"]]
        assert stamps == sorted(stamps)
        assert exchange["matched_member"] == f"Patient/{switcher['old_patient_id']}"
        # The route, decided from what the partner's CapabilityStatement said, explained.
        route = exchange["route"]
        assert (route["find_member"], route["data"]) == ("MemberId", "$everything")
        assert route["capabilities_read_at"] != "never read"
        assert {r["option"] for r in route["rejected"]} == {"search by compartment", "bulk export"}

        patient_id = exchange["imported_patient_id"]
    # What the old payer holds, read under the consent the exchange presented to it.
    with old.client() as client:
        original = client.get(f"/fhir/Patient/{switcher['old_patient_id']}/$everything").json()
    original_types = sorted(e["resource"]["resourceType"] for e in original["entry"])
    received = stored_everything(new, patient_id)

    resources = [e["resource"] for e in received["entry"]]
    by_id = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    # Everything the old payer sent arrived under new ids (its transmitter Provenance too,
    # as this second $everything carries one), plus our own Provenance.
    stored_types = sorted(r["resourceType"] for r in resources)
    assert stored_types.count("Provenance") == original_types.count("Provenance") + 1
    assert [t for t in stored_types if t != "Provenance"] == [
        t for t in original_types if t != "Provenance"
    ]
    assert switcher["old_patient_id"] not in {r["id"] for r in resources}
    assert exchange["resource_count"] == len(original["entry"]) + 1

    provenances = [r for r in resources if r["resourceType"] == "Provenance"]
    ours = [
        p
        for p in provenances
        if any(a["type"]["coding"][0]["code"] == "custodian" for a in p["agent"])
    ]
    assert len(ours) == 1
    assert ours[0]["agent"][1]["who"]["identifier"]["value"] == info["platform"]["npi"]
    assert ours[0]["agent"][0]["who"]["identifier"]["value"] == info["payers"][0]["npi"]
    # The plan held no Patient for the member: the old payer's Patient is kept as the
    # source it is, linked to ours for the member, which everything else points to.
    (source,) = [r for r in resources if r["resourceType"] == "Patient"]
    assert source["link"] == [{"other": {"reference": f"Patient/{patient_id}"}, "type": "seealso"}]
    assert f"Patient/{source['id']}" in {t["reference"] for t in ours[0]["target"]}
    assert exchange["completeness"]["member_patient"] == {
        "patient": f"Patient/{patient_id}",
        "how": "derived-none",
    }
    with_ours = stored_everything(new, patient_id, ours=True)["entry"]
    by_id[f"Patient/{patient_id}"] = next(
        e["resource"] for e in with_ours if e["resource"]["id"] == patient_id
    )
    # The old payer's Provenance were kept, re-targeted to our ids.
    kept = [p for p in provenances if p is not ours[0] and p["meta"].get("source")]
    assert kept and all(t["reference"] in by_id for p in kept for t in p["target"])
    # Neither payer logged who the member is.
    member = switcher["request"]["member"]
    for log in (old.log()[logged_before[0] :], new.log()[logged_before[1] :]):
        for secret in (
            member["family"],
            member["birth_date"],
            switcher["request"]["old_coverage"]["member_id"],
        ):
            assert secret not in log
    # Every reference among the member's resources resolves locally.
    for resource in resources:
        for reference in _references(resource):
            if reference.split("/")[0] in ("Patient", "Coverage", "Encounter", "Condition"):
                assert reference in by_id, reference


def stored_everything(
    payer: ServerProcess, patient_id: str, *, ours: bool = False
) -> dict[str, Any]:
    """What the payer holds of the member (its compartment and the shared resources it
    reaches), as Bundle entries, read from its store: what the old payers sent and our
    Provenance, and with ``ours`` our Patient for the member (ADR 0054) too."""
    from payerbridge.consent.model import ConsentPolicy
    from payerbridge.disclosure.release import release
    from payerbridge.disclosure.scope import WholeRecord
    from payerbridge.fhir.resources import is_member_record

    held = WholeRecord(labels=False)  # what is held, not what another payer may take
    with payer.platform() as platform:
        compartment = platform.members.compartment(patient_id)
        released = release(compartment, platform.members, ConsentPolicy.SENSITIVE, scope=held)
    kept = [r for r in released.resources if ours or not is_member_record(r)]
    return {"entry": [{"resource": r} for r in kept]}


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_an_unknown_member_fails_with_a_reason_and_an_expired_consent_blocks(
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]], network: Path
) -> None:
    _old, new, _info = shared
    request = switcher_to(network, 1)["request"]
    # Someone the old payer never covered: another name, birth date and card.
    stranger = {
        **request,
        "member": {**request["member"], "given": ["Zebediah"], "birth_date": "1901-01-01"},
        "old_coverage": {
            **request["old_coverage"],
            "member_id": "ZZ0000001",
            "subscriber_id": "ZZ0000001",
        },
    }
    expired = {
        **request,
        "consent": {**request["consent"], "start": "2020-01-01", "end": "2020-03-01"},
    }
    # A client of its own (no operator scope): the listing shows its exchanges only.
    token = new.register_client("client-unknown-member", scope=EXCHANGES_SCOPE)
    with new.client_with(token) as client:
        failed = wait_terminal(
            client, client.post("/exchanges", json=stranger, headers=new_key()).headers["location"]
        )
        blocked = wait_terminal(
            client, client.post("/exchanges", json=expired, headers=new_key()).headers["location"]
        )
        listing = client.get("/exchanges", params={"state": "failed"}).json()
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "no-match"
    assert [s["to"] for s in failed["history"]][-2:] == ["route_selected", "failed"]
    assert blocked["state"] == "blocked" and blocked["error"]["code"] == "expired"
    assert "consent period has ended" in blocked["error"]["text"]
    assert [item["id"] for item in listing["items"]] == [failed["id"]]


def test_an_unreachable_partner_is_dead_lettered_and_only_an_operator_can_replay_it(
    server: Callable[..., ServerProcess], network: Path
) -> None:
    new = server(
        "lonely",
        env={
            "PAYERBRIDGE_RETRY_MAX_ATTEMPTS": "3",
            "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
            # The replay's failures open the partner's breaker (5 in a row): parked on it,
            # it spends no more attempts and waits for its deadline (ADR 0047).
            "PAYERBRIDGE_BREAKER_COOLDOWN_SECONDS": "2",
            "PAYERBRIDGE_EXCHANGE_BUDGET_SECONDS": "8",
        },
    )
    token = new.register_client("ops", scope=OPERATOR_SCOPE)
    with new.client_with(token) as operator_client:
        operator_client.post(
            "/partners",
            json={
                "id": "gone",
                "name": "Gone Plan",
                "npi": "1245319599",
                "base_url": f"http://127.0.0.1:{free_port()}/fhir",
            },
        )
    new.authorize("portal", scope=EXCHANGES_SCOPE)  # the plan's system: no operator scope
    with new.client() as client:
        request = orjson.loads((network / "switchers.json").read_bytes())[0]["request"]
        response = client.post(
            "/exchanges", json={**request, "old_payer": "gone"}, headers=new_key()
        )
        exchange = wait_terminal(client, response.headers["location"], timeout=90)
        assert exchange["state"] == "dead_lettered", exchange
        assert exchange["error"]["code"] == "attempts-exhausted"
        assert exchange["attempts"] == 3 and exchange["step"] == "member-match"
        letter = exchange["dead_letter"]
        assert letter["step"] == "member-match" and letter["attempts"] == 3
        assert letter["last_route"]["partner_id"] == "gone"
        assert letter["policy"]["retry"]["max_attempts"] == 3
        assert len(letter["request_sha256"]) == 64

        replay = f"/exchanges/{exchange['id']}/$replay"
        with new.anonymous() as anonymous:
            assert anonymous.post(replay).status_code == 401
        refused = client.post(replay)  # a valid token without the operator scope
        assert refused.status_code == 403 and refused.json()["issue"][0]["code"] == "forbidden"
        wrong = client.post(replay, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.json()["issue"][0]["code"] == "login"
        operator = {"Authorization": f"Bearer {token}", "Idempotency-Key": "replay-1"}
        first = client.post(replay, headers=operator)
        assert first.status_code == 200, first.text
        again = client.post(replay, headers=operator)  # same key: nothing new happens
        assert again.status_code == 200
        replayed = wait_terminal(client, response.headers["location"], timeout=90)
        assert replayed["replays"] == 1 and replayed["state"] == "dead_lettered"
        assert replayed["error"]["code"] == "deadline-exceeded"  # a fresh deadline, spent
        steps = [(s["to"], s["actor"]) for s in replayed["history"]]
        assert steps.count(("validated", "ops")) == 1  # one replay, by the operator
        assert [s for s, _ in steps].count("consent_verified") == 2  # consent checked again
        conflict = client.post(replay, headers={**operator, "Idempotency-Key": "replay-2"})
        assert conflict.status_code in (200, 409)


def test_an_exchange_runs_with_a_udap_partner_we_registered_with_our_certificate(
    server: Callable[..., ServerProcess], network: Path, tmp_path: Path
) -> None:
    """UDAP B2B both ways: the new payer reads the old payer's signed metadata, registers
    there with a software statement signed by its community certificate, and runs the
    exchange with tokens got by x5c assertions; no operator step at the old payer."""
    info = orjson.loads((network / "network.json").read_bytes())
    old_info = info["payers"][0]
    community = CertificateAuthority("Payer Community")
    anchor = tmp_path / "community.pem"
    anchor.write_bytes(community.pem())
    stranger = CertificateAuthority("Another Community")

    def udap_env(
        name: str, port: int, authority: CertificateAuthority, npi: str | None = None
    ) -> dict[str, str]:
        # The community's certificate carries the payer's NPI (ADR 0026): it registers
        # at the old payer with no operator step.
        issued = authority.issue(f"http://127.0.0.1:{port}/fhir", npi=npi)
        cert, key = issued.write(tmp_path, name)
        return {
            "PAYERBRIDGE_UDAP_TRUST_ANCHORS": orjson.dumps([str(anchor)]).decode(),
            "PAYERBRIDGE_UDAP_CERTIFICATE": str(cert),
            "PAYERBRIDGE_UDAP_CERTIFICATE_KEY": str(key),
        }

    old_port = free_port_run(3)
    rogue_port, new_port = old_port + 1, old_port + 2
    old = server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NAME": old_info["name"],
            "PAYERBRIDGE_ORG_NPI": old_info["npi"],
            **udap_env("old", old_port, community),
        },
        import_files=[network / old_info["file"]],
        port=old_port,
    )
    # A server whose metadata is signed by a certificate from outside our community.
    rogue = server("rogue", env=udap_env("rogue", rogue_port, stranger), port=rogue_port)
    new = server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NAME": info["platform"]["name"],
            "PAYERBRIDGE_ORG_NPI": info["platform"]["npi"],
            **udap_env("new", new_port, community, info["platform"]["npi"]),
        },
        port=new_port,
    )
    partner = {"name": old_info["name"], "npi": old_info["npi"], "auth": "udap"}
    with new.client() as client:
        refused = client.post(
            "/partners", json={**partner, "id": "rogue", "base_url": rogue.fhir_base}
        )
        assert refused.status_code == 422, refused.text
        assert "trust anchor" in refused.json()["issue"][0]["details"]["text"]
        assert client.get("/partners/rogue").status_code == 404
        response = client.post(
            "/partners", json={**partner, "id": old_info["slug"], "base_url": old.fhir_base}
        )
        assert response.status_code == 201, response.text
        registered = response.json()
        assert registered["auth"] == "udap" and registered["client_id"].startswith("udap-")
        assert registered["token_url"] == f"{old.base_url}/auth/token"
        switcher = orjson.loads((network / "switchers.json").read_bytes())[0]
        location = submit(client, switcher["request"])
        exchange = wait_terminal(client, location)
        assert exchange["state"] == "completed", exchange
    with old.platform() as platform:
        client_record = platform.clients.get(registered["client_id"])
        audited = {
            (event.action, event.outcome)
            for event in platform.audit_chain.events()
            if event.entity_id == registered["client_id"]
        }
    assert client_record is not None and client_record.npi == info["platform"]["npi"]
    assert client_record.certificate_uri == new.fhir_base
    assert {("client.register", "success"), ("auth.token", "success")} <= audited


def test_the_requester_follows_every_page_of_the_members_record(
    server: Callable[..., ServerProcess],
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    network: Path,
) -> None:
    _, new, info = shared  # an old payer of its own, the module's new payer
    old = start_old(server, network, {"PAYERBRIDGE_EVERYTHING_PAGE_SIZE": "3"})
    trust_new(old, new, info)
    add_partner(new, old, info, "paged")
    switcher = switcher_to(network, 2, "paged")
    with new.client() as client:
        location = submit(client, switcher["request"])
        exchange = wait_terminal(client, location)
    assert exchange["state"] == "completed", exchange
    received = next(step for step in exchange["history"] if step["to"] == "received")
    pages = received["detail"]["pages"]
    with old.client() as client:  # the same record, read page by page as the requester did
        sent = [
            e["resource"]["resourceType"]
            for page in follow(client, f"/fhir/Patient/{switcher['old_patient_id']}/$everything")
            for e in page["entry"]
        ]
    assert len(pages) > 1 and all(size <= 4 for size in pages)  # three and a Provenance
    stored = stored_everything(new, exchange["imported_patient_id"])
    kinds = [e["resource"]["resourceType"] for e in stored["entry"]]
    assert kinds.count("Patient") == 1
    assert sorted(k for k in kinds if k != "Provenance") == sorted(
        k for k in sent if k != "Provenance"
    )


def test_a_partner_that_answers_member_match_without_member_id_is_searched_by_identifier(
    server: Callable[..., ServerProcess],
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    network: Path,
) -> None:
    """The HRex 1.0.0 answer (the member's identifier, no MemberId): the requester finds
    the Patient with ``Patient?identifier=`` as PDex 2.0 expects, and says so."""
    _, new, info = shared  # an old payer of its own, the module's new payer
    old = start_old(server, network, {"PAYERBRIDGE_MEMBER_MATCH_RETURN_MEMBER_ID": "false"})
    trust_new(old, new, info)
    add_partner(new, old, info, "no-member-id")
    switcher = switcher_to(network, 3, "no-member-id")
    with new.client() as client:
        location = submit(client, switcher["request"])
        exchange = wait_terminal(client, location)
    assert exchange["state"] == "completed", exchange
    assert exchange["matched_member"] == f"Patient/{switcher['old_patient_id']}"
    matched = next(step for step in exchange["history"] if step["to"] == "member_matched")
    assert matched["detail"]["member_found_by"] == "Patient?identifier="
    # The old payer saw the search (its access log names the path, never the member).
    assert '"method":"GET","path":"/fhir/Patient","status":200' in old.log()


@pytest.mark.parametrize("decision", ["accept", "reject"])
def test_an_exchange_the_old_payer_puts_under_review_waits_for_its_reviewer(
    server: Callable[..., ServerProcess], network: Path, decision: str
) -> None:
    """The old payer's identity engine wants a person to confirm the member: the exchange
    waits in ``manual_review`` with the old payer's reason, asks again when due (the
    sweep), and, with nobody acting on our side, completes once the old payer's reviewer
    accepts, or fails with the reviewer's answer when it rejects."""
    new_env = {
        "PAYERBRIDGE_PARTNER_REVIEW_POLL_SECONDS": "1",
        "PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "2",  # the sweep asks again; 30 s by default
    }
    old, new, _ = start_payers(server, network, new_env=new_env)
    switcher = orjson.loads((network / "switchers.json").read_bytes())[0]
    request = copy.deepcopy(switcher["request"])
    given = request["member"]["given"][0]
    # A first name a letter off, without the middle name that would confirm it.
    request["member"]["given"] = [given[:-1] + ("a" if given[-1] != "a" else "e")]
    request["member"].pop("phone", None)
    request["old_coverage"] = {"member_id": "ZZ0000000001", "relationship": "self"}
    with new.client() as client:
        location = submit(client, request)
        waiting = wait_terminal(client, location)
        assert waiting["state"] == "manual_review", waiting
        assert waiting["error"]["code"] == "partner-review"
        assert waiting["next_retry_at"] and waiting["deadline_at"]  # a next action, a deadline
        with operator(old) as ops:
            (case,) = ops.get("/identity/reviews").json()["reviews"]
            assert case["id"] in waiting["error"]["text"]  # the old payer's reference
            # Our side of it: waiting at that partner on its case, since when, until when.
            (waits,) = client.get("/identity/waiting-at-partners").json()["items"]
            assert waits["exchange"] == waiting["id"] and waits["partner_case"] == case["id"]
            assert waits["partner"] == waiting["old_payer"]
            assert waits["deadline_at"] == waiting["deadline_at"] and waits["waited_seconds"] >= 0
            decided = ops.post(
                f"/identity/reviews/{case['id']}/$decide",
                json={
                    "decision": decision,
                    "reason": "checked against the enrolment file",
                    "reviewer": "r.lee",
                    "version": case["version"],
                    **({"member": switcher["old_patient_id"]} if decision == "accept" else {}),
                },
            )
            assert decided.status_code == 200, decided.text
        # Nobody acts on our side: the sweep asks again when it is due, and the exchange
        # runs on to its end (waiting only for it to leave manual_review raced the steps
        # after it on a loaded machine).
        done = wait_until(client, location, lambda e: e["state"] in ("completed", "failed"), 90)
    if decision == "reject":
        assert done["state"] == "failed", done
        assert done["error"]["code"] == "no-match" and "reviewer" in done["error"]["text"]
        return
    assert done["state"] == "completed", done
    assert done["matched_member"] == f"Patient/{switcher['old_patient_id']}"
    assert done["error"] is None
    states = [step["to"] for step in done["history"]]
    assert states[states.index("manual_review") :][:3] == [
        "manual_review",
        "member_matched",
        "retrieving",
    ]


def operator(payer: ServerProcess) -> Any:
    """A client of the old payer with the operator scope (its review queue)."""
    return payer.client_with(payer.register_client("ops", scope=OPERATOR_SCOPE))


def wait_until(
    client: Any, location: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exchange: dict[str, Any] = client.get(location).json()
        if done(exchange):
            return exchange
        time.sleep(0.5)
    raise AssertionError(f"the exchange did not move on: {exchange}")


def test_the_directory_keeps_what_a_partner_says_it_can_do_and_refresh_says_what_changed(
    server: Callable[..., ServerProcess],
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    network: Path,
) -> None:
    _, new, info = shared  # an old payer of its own (it stops it), the module's new payer
    old = start_old(server, network)
    trust_new(old, new, info)
    partner_id = "directory"
    add_partner(new, old, info, partner_id)
    with new.client() as client:
        shown = client.get(f"/partners/{partner_id}").json()
        capabilities = shown["capabilities"]  # read when it was added
        assert {"member-match", "everything"} <= set(capabilities["operations"])
        assert capabilities["fhir_version"] == "4.0.1" and "hrex" in capabilities["guides"]
        assert capabilities["endpoints"]["token"].endswith("/auth/token")
        refreshed = client.post(f"/partners/{partner_id}/$refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["changes"] == []
        assert client.post("/partners/nobody/$refresh").status_code == 404
    listed = new.cli("partners", "refresh", partner_id)
    assert listed.returncode == 0, listed.stderr
    assert "no change" in listed.stdout and "member-match" in listed.stdout
    show = new.cli("partners", "show", partner_id)
    assert show.returncode == 0 and orjson.loads(show.stdout)["capabilities"]["operations"]
    # A partner whose endpoint is gone: the last reading stays, the refresh says why.
    old.stop()
    gone = new.cli("partners", "refresh", partner_id)
    assert gone.returncode != 0 and "metadata" in gone.stderr
    with new.client() as client:
        assert client.get(f"/partners/{partner_id}").json()["capabilities"]["operations"]


def test_a_partner_in_its_maintenance_window_is_waited_for_and_a_suspended_one_is_not_routed(
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]], network: Path
) -> None:
    from datetime import UTC, datetime

    old, new, info = shared
    partner_id = "maintained"  # the module's old payer, under a partner id of its own
    add_partner(new, old, info, partner_id)
    switchers = [switcher_to(network, number, partner_id) for number in (4, 5, 6)]
    now = datetime.now(UTC)
    ends = (now + timedelta(seconds=8)).replace(microsecond=0)
    window = {"start": (now - timedelta(minutes=5)).isoformat(), "end": ends.isoformat()}
    with new.client() as client:
        bad = client.put(
            f"/partners/{partner_id}/operations",
            json={"status": "paused", "maintenance": [{**window, "reason": ""}]},
        )
        assert bad.status_code == 400, bad.text
        where = {i["expression"][0] for i in bad.json()["issue"]}
        assert {"status", "maintenance[0].reason"} <= where
        assert client.get(f"/partners/{partner_id}").json()["operations"]["maintenance"] == []
        put = client.put(
            f"/partners/{partner_id}/operations",
            json={"maintenance": [{**window, "reason": "quarterly upgrade"}]},
        )
        assert put.status_code == 200, put.text
        assert put.json()["operations"]["maintenance"][0]["reason"] == "quarterly upgrade"
        location = submit(client, switchers[0]["request"])
        waiting = wait_until(client, location, lambda e: e["route"] is not None, timeout=30)
        wait = waiting["route"]["wait"]
        assert "maintenance window" in wait["reason"] and "quarterly upgrade" in wait["reason"]
        assert datetime.fromisoformat(wait["until"]) == ends
        assert waiting["state"] == "route_selected", (waiting["error"], waiting["history"][-2:])
        assert datetime.fromisoformat(waiting["next_retry_at"]) == ends
        exchange = wait_terminal(client, location, timeout=60)
        assert exchange["state"] == "completed", exchange
        # Nothing was asked of the partner before its window ended.
        matched = next(s for s in exchange["history"] if s["to"] == "member_matched")
        assert datetime.fromisoformat(matched["at"]) >= ends
    suspended = new.cli("partners", "operations", partner_id, "--suspend", "contract under review")
    assert suspended.returncode == 0, suspended.stderr
    assert orjson.loads(suspended.stdout)["status"] == "suspended"
    with new.client() as client:
        location = submit(client, switchers[0]["request"])
        failed = wait_terminal(client, location)
        assert (failed["state"], failed["error"]["code"]) == ("failed", "no-route"), failed
        assert "suspended by an operator: contract under review" in failed["error"]["text"]
    # A long window: the exchange waits, and an operator cancels it rather than wait.
    resumed = new.cli(
        "partners",
        "operations",
        partner_id,
        "--resume",
        "--maintenance",
        f"{now.isoformat()}/{(now + timedelta(hours=3)).isoformat()}=datacenter move",
    )
    assert resumed.returncode == 0, resumed.stderr
    shown = orjson.loads(resumed.stdout)
    assert (shown["status"], shown["maintenance"][0]["reason"]) == ("active", "datacenter move")
    with new.client() as client:
        waiting_ids = []
        for switcher in switchers[1:3]:
            location = submit(client, switcher["request"])
            wait_until(client, location, lambda e: e["next_retry_at"] is not None, timeout=30)
            waiting_ids.append(location.rsplit("/", 1)[1])
        assert client.post(f"/exchanges/{waiting_ids[0]}/$cancel", json={}).status_code == 400
        refused = client.post(f"/exchanges/{waiting_ids[0]}/$resubmit")
        assert refused.status_code == 409 and "review" in refused.text
        cancelled = client.post(
            f"/exchanges/{waiting_ids[0]}/$cancel", json={"note": "member withdrew"}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["error"] == {
            "code": "cancelled",
            "text": "cancelled by an operator: member withdrew",
        }
    by_cli = new.cli("exchanges", "cancel", waiting_ids[1], "--note", "duplicate")
    assert by_cli.returncode == 0, by_cli.stderr
    with new.client() as client:
        assert client.get(f"/exchanges/{waiting_ids[1]}").json()["state"] == "failed"
    again = new.cli("exchanges", "cancel", waiting_ids[1], "--note", "twice")
    assert again.returncode != 0 and "only while it waits" in again.stderr


def test_a_partner_that_drops_everything_is_read_by_its_searches_after_a_refresh(
    server: Callable[..., ServerProcess],
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    network: Path,
) -> None:
    """The partner restarts without $everything: ``partners refresh`` says it dropped
    the operation, and the next exchange reads the member's record by its searches
    (by patient, with Provenance), completes, and says how it was read."""
    _, new, info = shared  # an old payer of its own (it restarts it), the module's new payer
    old = start_old(server, network)
    trust_new(old, new, info)
    partner_id = "restarted"
    add_partner(new, old, info, partner_id)
    switchers = [switcher_to(network, 7, partner_id)]
    old.stop()
    old = server("old", env={**old.env, "PAYERBRIDGE_OFFER_EVERYTHING": "false"}, port=old.port)
    refreshed = new.cli("partners", "refresh", partner_id)
    assert refreshed.returncode == 0, refreshed.stderr
    assert "dropped operation everything" in refreshed.stdout
    with new.client() as client:
        location = submit(client, switchers[0]["request"])
        exchange = wait_terminal(client, location)
    assert exchange["state"] == "completed", exchange
    route = exchange["route"]
    assert route["data"] == "search by compartment" and "Condition" in route["search_types"]
    assert (
        "does not offer $everything"
        in {r["option"]: r["reason"] for r in route["rejected"]}["$everything"]
    )
    received = next(s for s in exchange["history"] if s["to"] == "received")
    assert received["detail"]["read_by"] == "search by compartment"
    assert exchange["resource_count"] > 1
    log = old.log()
    # One search per type it searches by patient (the access log names the route, not the
    # member), and no $everything asked.
    searches = log.count('"method":"GET","path":"/fhir/{resource_type}","status":200')
    assert searches >= len(route["search_types"]) and "/$everything" not in log
    with old.client() as reader:  # and $everything itself now says what to do instead
        answer = reader.get(f"/fhir/Patient/{switchers[0]['old_patient_id']}/$everything")
        assert answer.status_code == 404 and answer.json()["issue"][0]["code"] == "not-supported"


def test_a_partners_announced_rate_limit_spaces_every_call_to_it(
    shared: tuple[ServerProcess, ServerProcess, dict[str, Any]], network: Path
) -> None:
    from datetime import datetime

    old, new, info = shared
    partner_id = "rate-limited"  # the module's old payer, under a partner id of its own
    add_partner(new, old, info, partner_id)
    logged_before = len(old.log())  # the old payer's log from here on is this test's
    limited = new.cli("partners", "operations", partner_id, "--rate-limit", "1/2")
    assert limited.returncode == 0, limited.stderr
    assert orjson.loads(limited.stdout)["rate_limit"] == {"requests": 1, "per_seconds": 2.0}
    bad = new.cli("partners", "operations", partner_id, "--rate-limit", "fast")
    assert bad.returncode != 0 and "rate_limit" in bad.stderr
    switchers = [switcher_to(network, number, partner_id) for number in (8, 9)]
    with new.client() as client:
        locations = [submit(client, switcher["request"]) for switcher in switchers]
        exchanges = [wait_terminal(client, at, timeout=60) for at in locations]
    assert [e["state"] for e in exchanges] == ["completed", "completed"], exchanges
    notes = " ".join(exchanges[0]["route"]["notes"])
    assert "the partner takes 1 calls per 2 s" in notes
    # The partner saw its four calls (two per exchange) begin two seconds apart: a line is
    # logged when its answer is sent, so each call began its duration before. A loaded
    # machine can start one call's clock late and the next's early, so the bound is looser
    # than the two seconds; unspaced, the calls come milliseconds apart.
    calls = [
        datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
        - timedelta(milliseconds=line["duration_ms"])
        for line in map(
            orjson.loads, old.logged(logged_before, "$everything", lines=2).splitlines()
        )
        if line.get("msg") == "request" and _exchange_call(line)
    ]
    assert len(calls) == 4, calls
    gaps = [(b - a).total_seconds() for a, b in zip(calls, calls[1:], strict=False)]
    assert all(gap >= 1.5 for gap in gaps), gaps


def _exchange_call(line: dict[str, Any]) -> bool:
    """An access-log line of $member-match (logged as "unmatched": the operation is a
    route of its own) or of $everything."""
    path = line.get("path", "")
    return path.startswith("/fhir/Patient/") or (line.get("method"), path) == ("POST", "unmatched")
