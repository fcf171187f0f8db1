"""Holds and break-glass that need the right person (issue 67, ADR 0046), against one real
server the module shares: a legal hold placed by one principal is released by it or by
counsel only, through the API, the CLI and the console alike, a refusal changing nothing
and audited; break-glass is for a role that may see identifiers and, as this plan asks,
in force once a second operator approved it; a partner URL with credentials in it is
refused."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from payerbridge.security.model import OPERATOR_SCOPE, Role
from payerbridge.security.operator_accounts import AddOperator, add_operator
from tests.servers import ServerProcess

PASSWORD = "a long enough password"
ENV = {
    "PAYERBRIDGE_HOLD_COUNSEL": "api:counsel-app console:legal",
    "PAYERBRIDGE_BREAK_GLASS_APPROVAL": "true",
}


@pytest.fixture(scope="module")
def payer(module_server: Callable[..., ServerProcess]) -> ServerProcess:
    payer = module_server("holds", env=ENV)
    with payer.platform() as platform:
        for name, role in (
            ("ops-one", Role.OPERATOR),
            ("ops-two", Role.OPERATOR),
            ("legal", Role.AUDITOR),
            ("watcher", Role.VIEWER),
            ("owner", Role.REVIEWER),
        ):
            add_operator(AddOperator(name, role, PASSWORD, "test"), platform.units.operators())
    return payer


def _token(page: str, field: str) -> str:
    found = re.search(rf'name="{field}" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


@contextmanager
def console(
    payer: ServerProcess, name: str, *, source: str = "127.0.0.1"
) -> Iterator[httpx.Client]:
    """A browser signed in to the console as ``name``, from the address ``source``."""
    with _browser(payer, source) as client:
        signed = _sign_in(client, name, PASSWORD)
        assert signed.status_code == 303, signed.text[:500]
        yield client


def _browser(payer: ServerProcess, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=payer.base_url, timeout=30, transport=transport)


def _sign_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    form = client.get("/console/login")
    data = {"login_token": _token(form.text, "login_token"), "name": name, "password": password}
    return client.post("/console/login", data=data)


def _post(client: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    csrf = _token(client.get("/console/holds").text, "csrf_token")
    return client.post(path, data={"csrf_token": csrf, **data})


def _api_hold(client: httpx.Client, member: str) -> str:
    placed = client.post(
        f"/lifecycle/members/{member}/holds", json={"reason": "matter 7", "by": "jo"}
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["placed_by_principal"] == "api:tester"
    return str(placed.json()["id"])


def test_a_hold_placed_by_one_principal_is_released_by_it_or_counsel_alone(
    payer: ServerProcess,
) -> None:
    member = "m-held-1"
    other = payer.register_client("other-ops", scope=OPERATOR_SCOPE)
    counsel = payer.register_client("counsel-app", scope=OPERATOR_SCOPE)
    with payer.client() as placer, payer.client_with(other) as intruder:
        hold = _api_hold(placer, member)
        release = f"/lifecycle/holds/{hold}/$release"
        # Another operator client, naming the placer's person, is still another client.
        refused = intruder.post(release, json={"by": "jo"})
        assert refused.status_code == 403, refused.text
        issue = refused.json()["issue"][0]
        assert issue["code"] == "forbidden"
        text = issue["details"]["text"]
        assert "api:tester" in text and "api:counsel-app" in text and "other-ops" in text
        erase = intruder.post(
            f"/lifecycle/members/{member}/$erase", json={"reason": "request", "by": "jo"}
        )
        assert erase.status_code == 409, erase.text
        # The CLI acts as its operating-system user: not the client that placed it.
        cli = payer.cli("members", "release", hold, "--by", "jo")
        assert cli.returncode == 7 and "may be released only by" in cli.stderr, cli.stderr
        # Nor a console operator.
        with console(payer, "ops-two") as browser:
            page = _post(browser, f"/console/holds/{hold}/release", {"member_id": member})
            assert page.status_code == 403
            assert "may be released only by" in html.unescape(page.text)
        listed = placer.get(f"/lifecycle/members/{member}/holds").json()["holds"]
        assert listed[0]["released_at"] is None
        # Counsel may.
        with payer.client_with(counsel) as lawyer:
            done = lawyer.post(release, json={"by": "counsel"})
        assert done.status_code == 200, done.text
        assert done.json()["released_by"] == "api:counsel-app (counsel)"

        # The CLI's own hold: the API's operator may not release it; the same user may.
        placed = payer.cli("members", "hold", member, "--reason", "matter 8")
        assert placed.returncode == 0, placed.stderr
        cli_hold = placed.stdout.strip()
        assert (
            placer.post(f"/lifecycle/holds/{cli_hold}/$release", json={"by": "jo"}).status_code
            == 403
        )
        released = payer.cli("members", "release", cli_hold)
        assert released.returncode == 0, released.stderr

        # The placer itself may.
        again = _api_hold(placer, member)
        done = placer.post(f"/lifecycle/holds/{again}/$release", json={"by": "jo"})
        assert done.status_code == 200, done.text

    with payer.platform() as platform:
        outcomes = [
            (e["action"], e["outcome"]) for e in platform.audit.for_entity("Patient", member)
        ]
    assert outcomes.count(("member.hold-release", "failure")) == 4
    assert outcomes.count(("member.hold-release", "success")) == 3


def test_a_hold_placed_in_the_console_is_released_there_by_its_placer_or_counsel(
    payer: ServerProcess,
) -> None:
    member = "m-held-2"
    with console(payer, "ops-one") as one:
        placed = _post(one, "/console/holds", {"member_id": member, "reason": "matter 9"})
        assert placed.status_code == 303, placed.text[:500]
        page = html.unescape(one.get(f"/console/holds?member_id={member}").text)
        first = re.search(r'action="/console/holds/([^/"]+)/release"', page)
        assert first and "console:ops-one" in page
        hold = first.group(1)
        with console(payer, "ops-two") as two:
            refused = _post(two, f"/console/holds/{hold}/release", {"member_id": member})
            assert refused.status_code == 403
            assert "console:ops-one" in html.unescape(refused.text)
        with payer.client() as api:
            assert (
                api.post(f"/lifecycle/holds/{hold}/$release", json={"by": "x"}).status_code == 403
            )
        done = _post(one, f"/console/holds/{hold}/release", {"member_id": member})
        assert done.status_code == 303 and "done=released" in done.headers["location"]
        # Counsel (an auditor account the plan names) releases another's hold.
        placed = _post(one, "/console/holds", {"member_id": member, "reason": "matter 10"})
        hold = re.findall(
            r'action="/console/holds/([^/"]+)/release"',
            one.get(f"/console/holds?member_id={member}").text,
        )[-1]
    with console(payer, "legal") as lawyer:
        done = _post(lawyer, f"/console/holds/{hold}/release", {"member_id": member})
        assert done.status_code == 303, done.text[:500]


def test_a_partner_url_with_credentials_is_refused_at_registration(payer: ServerProcess) -> None:
    body = {
        "id": "creds-plan",
        "name": "Creds Plan",
        "npi": "1245319599",
        "base_url": "https://clerk:hunter2@fhir.creds.example/fhir",
    }
    with payer.client() as operator:
        refused = operator.post("/partners", json=body)
        assert refused.status_code == 400, refused.text
        issues = refused.json()["issue"]
        assert [i["expression"] for i in issues] == [["base_url"]]
        assert "hunter2" not in refused.text
        token = {**body, "base_url": "https://fhir.creds.example/fhir", "client_id": "us"}
        token["token_url"] = "https://us:pw@fhir.creds.example/token"
        refused = operator.post("/partners", json=token)
        assert refused.status_code == 400, refused.text
        assert [i["expression"] for i in refused.json()["issue"]] == [["token_url"]]
        assert operator.get("/partners/creds-plan").status_code == 404
    cli = payer.cli(
        "partners", "add", "--id", "creds-plan", "--name", "Creds Plan", "--npi", "1245319599",
        "--base-url", "https://clerk:hunter2@fhir.creds.example/fhir",
    )  # fmt: skip
    assert cli.returncode == 2 and "base_url must not carry" in cli.stderr, cli.stderr


def test_break_glass_needs_a_role_that_sees_identifiers_and_a_second_operator(
    payer: ServerProcess,
) -> None:
    with console(payer, "watcher") as viewer:
        refused = _post(viewer, "/console/unmask", {"reason": "curious", "minutes": "5"})
        assert refused.status_code == 403
        assert "may not see members' identifiers" in html.unescape(refused.text)
    with console(payer, "ops-one") as asker, console(payer, "ops-two") as second:
        asked = _post(asker, "/console/unmask", {"reason": "INC-4411", "minutes": "5"})
        assert asked.status_code == 303 and "done=requested" in asked.headers["location"]
        assert 'id="unmasked"' not in asker.get("/console/").text
        grant = re.findall(
            r'action="/console/unmask/([^/"]+)/approve"', second.get("/console/unmask").text
        )
        assert len(grant) == 1
        own = _post(asker, f"/console/unmask/{grant[0]}/approve", {})
        assert own.status_code == 403
        approved = _post(second, f"/console/unmask/{grant[0]}/approve", {})
        assert approved.status_code == 303, approved.text[:500]
        assert 'id="unmasked"' in asker.get("/console/").text
        assert 'id="unmasked"' not in second.get("/console/").text


def test_a_guesser_from_one_address_does_not_keep_the_owner_out(payer: ServerProcess) -> None:
    """Loopback is a whole /8: the guesser calls from 127.0.0.2, the owner from 127.0.0.1."""
    with _browser(payer, "127.0.0.2") as guesser:
        tries = [_sign_in(guesser, "owner", "not the password").status_code for _ in range(6)]
        assert tries == [401] * 5 + [429]
        slowed = _sign_in(guesser, "owner", PASSWORD)
        assert slowed.status_code == 429 and "unlock" in html.unescape(slowed.text)
    with console(payer, "owner", source="127.0.0.1") as owner:
        assert owner.get("/console/").status_code == 200
    unlocked = payer.cli("operators", "unlock", "owner")
    assert unlocked.returncode == 0, unlocked.stderr
    assert payer.cli("operators", "unlock", "nobody-here").returncode == 3
    with payer.platform() as platform:
        trail = [e["action"] for e in platform.audit.for_entity("Operator", "owner")]
    assert "operator.unlock" in trail
