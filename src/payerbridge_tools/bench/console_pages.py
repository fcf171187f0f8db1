"""The pages ``bench console`` times and how: a client per role (the API's with an access
token, the console's signed in through its form), the pages with the paths each asks for,
and a page's times.

A page about one thing (an exchange, a case, a partner) asks about another each time,
drawn from what was loaded; the review cases from the queue itself. Every answer must be
200: another status stops the run, naming the page.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from joserfc.jwk import ECKey

from payerbridge.partners.auth import token_form
from payerbridge.security.model import AUDITOR_SCOPE, OPERATOR_SCOPE
from payerbridge_tools.bench.console_data import Fleet, utc_now

__all__ = [
    "AUDITOR",
    "OPS",
    "PASSWORD",
    "REQUESTER",
    "ROLES",
    "TARGET_MS",
    "PageTime",
    "Sessions",
    "pages",
    "sessions",
    "time_page",
    "token",
]

TARGET_MS = 300.0
_WARM_UP = 3
PASSWORD = "bench-" + uuid.uuid4().hex  # the console accounts' password, this run's only
REQUESTER, OPS, AUDITOR = "bench-requester", "bench-ops", "bench-auditor"
ROLES = {"ops": "operator", "reviewer": "reviewer", "auditor": "auditor"}
_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}")
_PARAMETERS = re.compile(r"\b(_cursor|member|request_id)=[^&]+")  # shown by name, not value


@dataclass(frozen=True)
class PageTime:
    surface: str  # "API" or "console"
    name: str
    example: str  # one path it asked for (ids shortened)
    asked: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @property
    def meets_target(self) -> bool:
        return self.p95_ms < TARGET_MS


def token(base: str, client_id: str, key: ECKey, scope: str) -> str:
    form = token_form(key, client_id, f"{base}/auth/token", scope)
    answer = httpx.post(f"{base}/auth/token", data=form, timeout=30, trust_env=False)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@dataclass
class Sessions:
    """A client per role: the API's with a bearer token, the console's signed in."""

    clients: dict[str, httpx.Client]


@contextmanager
def sessions(base: str, keys: dict[str, ECKey]) -> Iterator[Sessions]:
    clients: dict[str, httpx.Client] = {}
    try:
        for name, client_id, scope in (
            ("api", OPS, OPERATOR_SCOPE),
            ("api-auditor", AUDITOR, AUDITOR_SCOPE),
        ):
            bearer = token(base, client_id, keys[client_id], scope)
            clients[name] = httpx.Client(
                base_url=base,
                timeout=60,
                trust_env=False,
                headers={"Authorization": f"Bearer {bearer}"},
            )
        for name in ROLES:
            clients[name] = _signed_in(base, f"bench-{name}")
        yield Sessions(clients)
    finally:
        for client in clients.values():
            client.close()


def _signed_in(base: str, name: str) -> httpx.Client:
    """A browser's session: the sign-in form read, then posted with its token."""
    client = httpx.Client(base_url=base, timeout=60, trust_env=False, follow_redirects=False)
    form = client.get("/console/login")
    found = _LOGIN_TOKEN.search(form.text)
    if form.status_code != 200 or found is None:
        raise RuntimeError(f"the console's sign-in form answered {form.status_code}")
    fields = {
        "name": name,
        "password": PASSWORD,
        "login_token": found.group(1),
        "next": "/console/",
    }
    signed = client.post("/console/login", data=fields)
    if signed.status_code != 303:
        raise RuntimeError(f"signing in as {name} answered {signed.status_code}")
    return client


# (surface, name, role, paths: one per ask, from the loaded fleet and the server's answers)
_Page = tuple[str, str, str, Callable[[int], str]]


def pages(sessions: Sessions, fleet: Fleet) -> list[_Page]:
    rng = random.Random(11)
    ids, members, requests = fleet.exchange_ids, fleet.member_ids, fleet.request_ids

    def any_of(values: Sequence[str]) -> Callable[[int], str]:
        return lambda n: values[rng.randrange(len(values))]

    exchange, member, request = any_of(ids), any_of(members), any_of(requests)
    partner, client = any_of(fleet.partners), any_of(fleet.clients)
    monday = (fleet.first_day + (utc_now() - fleet.first_day) / 2).date()
    week = f"created=ge{monday.isoformat()}&created=lt{(monday + timedelta(days=7)).isoformat()}"
    api = sessions.clients["api"]
    following = api.get("/exchanges?_count=50").json()["next"]
    second = httpx.URL(following).raw_path.decode() if following else "/exchanges?_count=50"
    listed = api.get("/identity/reviews?_count=500").json()["reviews"]
    case = any_of([c["id"] for c in listed] or ["none"])
    return [
        ("API", "exchanges, newest", "api", lambda n: "/exchanges?_count=50"),
        ("API", "exchanges, next page", "api", lambda n: second),
        ("API", "exchanges by state", "api", lambda n: "/exchanges?state=dead_lettered"),
        (
            "API",
            "exchanges by partner and state",
            "api",
            lambda n: f"/exchanges?partner={partner(n)}&state=failed",
        ),
        ("API", "exchanges by reason", "api", lambda n: "/exchanges?reason=no-match"),
        ("API", "exchanges by member", "api", lambda n: f"/exchanges?member={member(n)}"),
        (
            "API",
            "exchanges by client and week",
            "api",
            lambda n: f"/exchanges?client={client(n)}&{week}",
        ),
        ("API", "exchanges by request id", "api", lambda n: f"/exchanges?request_id={request(n)}"),
        ("API", "one exchange", "api", lambda n: f"/exchanges/{exchange(n)}"),
        ("API", "an exchange's audit", "api", lambda n: f"/exchanges/{exchange(n)}/audit"),
        ("API", "review queue", "api", lambda n: "/identity/reviews"),
        ("API", "one review case", "api", lambda n: f"/identity/reviews/{case(n)}"),
        (
            "API",
            "AuditEvents of an exchange",
            "api-auditor",
            lambda n: f"/fhir/AuditEvent?entity=Exchange/{exchange(n)}",
        ),
        ("console", "dashboard", "ops", lambda n: "/console/"),
        ("console", "exchanges", "ops", lambda n: "/console/exchanges"),
        ("console", "exchanges by state", "ops", lambda n: "/console/exchanges?state=failed"),
        (
            "console",
            "exchanges by member",
            "ops",
            lambda n: f"/console/exchanges?member={member(n)}",
        ),
        ("console", "an exchange's timeline", "ops", lambda n: f"/console/exchanges/{exchange(n)}"),
        ("console", "dead letters and waiting", "ops", lambda n: "/console/waiting"),
        ("console", "partners", "ops", lambda n: "/console/partners"),
        ("console", "one partner", "ops", lambda n: f"/console/partners/{partner(n)}"),
        ("console", "bulk jobs and onboardings", "ops", lambda n: "/console/jobs"),
        ("console", "consents", "ops", lambda n: "/console/consents"),
        ("console", "review queue", "reviewer", lambda n: "/console/reviews"),
        ("console", "one review case", "reviewer", lambda n: f"/console/reviews/{case(n)}"),
        (
            "console",
            "waits at partners' reviewers",
            "reviewer",
            lambda n: "/console/reviews/waiting-at-partners",
        ),
        ("console", "audit status", "auditor", lambda n: "/console/audit"),
    ]


def time_page(sessions: Sessions, page: _Page, repeat: int) -> PageTime:
    surface, name, role, path_of = page
    client = sessions.clients[role]
    seconds = []
    for n in range(_WARM_UP + repeat):
        path = path_of(n)
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(
                f"{surface} page '{name}' ({path[:80]}) answered {answer.status_code}"
            )
        if n >= _WARM_UP:
            seconds.append(elapsed * 1000)
    seconds.sort()
    p95 = seconds[min(len(seconds) - 1, int(round(0.95 * len(seconds))) - 1)]
    example = _PARAMETERS.sub(r"\1={\1}", _IDS.sub("{id}", path_of(0)))
    return PageTime(
        surface, name, example[:90], len(seconds), statistics.median(seconds), p95, seconds[-1]
    )
