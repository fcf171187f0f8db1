"""SMART v1 and v2 scopes at resource-type granularity on the FHIR API, over HTTP against
one old-payer process: ``$everything`` answers with the types the token grants and names
the rest in an outcome entry (a token without the Patient is refused); pages keep the
first page's limit and never widen it; a search's Provenance, ours and the stored one,
goes only with the Provenance scope (ADR 0010, amendment 2)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt

from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from payerbridge.security.model import MEMBER_MATCH_SCOPE
from tests.builders import a_member_reaching_sensitive_shared_data, member_match_parameters
from tests.servers import REQUESTER_SCOPES, ServerProcess, new_signing_key, public_jwk

OLD_NPI, NPI = "1245319599", "1234567893"
FHIR = {"Content-Type": "application/fhir+json"}
CLIENT = "typed-payer"
DATA = a_member_reaching_sensitive_shared_data()
PATIENT_AND_COVERAGE = "system/Patient.rs system/Coverage.rs"

Resource = dict[str, Any]


@dataclass
class Payer:
    server: ServerProcess
    key: Any  # the client's signing key, for a member-scoped token

    def token(self, scope: str) -> str:
        """An access token of the client that presented the member's consent."""
        return self.server.register_client(CLIENT, npi=NPI, scope=scope)

    def client(self, scope: str) -> httpx.Client:
        return self.server.client_with(self.token(scope))


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Payer:
    """The old payer with one member (stored Provenance, shared resources), whose
    ``sensitive`` consent the client presented with $member-match: all of it may go."""
    data = tmp_path_factory.mktemp("type-scopes") / "old.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in DATA.values()))
    env = {"PAYERBRIDGE_ORG_NAME": "Old Plan", "PAYERBRIDGE_ORG_NPI": OLD_NPI}
    server = module_server("old", env=env, import_files=[data])
    key = new_signing_key()
    token = server.register_client(
        CLIENT, npi=NPI, scope=REQUESTER_SCOPES, jwks={"keys": [public_jwk(key)]}
    )
    with server.client_with(token) as client:
        matched = client.post(
            "/fhir/Patient/$member-match",
            json=member_match_parameters(our_npi=NPI, partner_npi=OLD_NPI, policy="sensitive"),
            headers=FHIR,
        )
        assert matched.status_code == 200, matched.text
    return Payer(server, key)


def types_of(bundle: Resource) -> set[str]:
    return {
        e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] != "outcome"
    }


def outcome_of(bundle: Resource) -> Resource | None:
    """The page's outcome entry, checked as FHIR R4 asks of one: last here, an
    OperationOutcome under a urn:uuid, of mode ``outcome``."""
    found = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    if not found:
        return None
    (entry,) = found
    assert entry is bundle["entry"][-1]
    assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    assert entry["resource"]["resourceType"] == "OperationOutcome"
    (issue,) = entry["resource"]["issue"]
    assert issue["severity"] == "warning" and issue["code"] == "suppressed"
    return entry["resource"]


def outcome_text(bundle: Resource) -> str:
    outcome = outcome_of(bundle)
    assert outcome is not None, "the page names nothing left out"
    return str(outcome["issue"][0]["details"]["text"])


def pages(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[Resource]:
    answer = client.get(url, params=params)
    assert answer.status_code == 200, answer.text
    found = [answer.json()]
    while next_url := next(
        (link["url"] for link in found[-1]["link"] if link["relation"] == "next"), None
    ):
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text
        found.append(answer.json())
    return found


# -- $everything


@pytest.mark.parametrize(
    "scope", [PATIENT_AND_COVERAGE, "system/Patient.read system/Coverage.read"], ids=["v2", "v1"]
)
def test_everything_gives_exactly_the_granted_types_and_names_the_rest(
    payer: Payer, scope: str
) -> None:
    key = str(uuid.uuid4())  # names this call's audit event
    with payer.client(scope) as client:
        bundle = client.get("/fhir/Patient/p1/$everything", headers={"Idempotency-Key": key})
        bundle = bundle.json()
    assert types_of(bundle) == {"Patient", "Coverage"}
    assert bundle["total"] == 2
    text = outcome_text(bundle)
    for left_out in ("Encounter", "ExplanationOfBenefit", "Organization", "Provenance"):
        assert left_out in text
    assert "Coverage" not in text and "system/*.rs" in text
    # The audit trail records what went, and which types the token left out.
    with payer.server.platform() as platform:
        (event,) = [
            e
            for e in platform.audit.for_entity("Patient", "p1")
            if e["action"] == "patient.everything" and e["detail"].get("idempotency_key") == key
        ]
    assert event["detail"]["entries"] == 2
    assert "Provenance" in event["detail"]["types_not_granted"]


def test_the_wildcard_answers_as_before_with_no_outcome(payer: Payer) -> None:
    with payer.client(REQUESTER_SCOPES) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    assert outcome_of(bundle) is None
    assert {f"{r['resourceType']}/{r['id']}" for r in resources(bundle)} >= DATA.keys()


def test_a_retry_with_a_token_granting_other_types_is_another_request(payer: Payer) -> None:
    key = str(uuid.uuid4())
    with payer.client(PATIENT_AND_COVERAGE) as client:
        first = client.get("/fhir/Patient/p1/$everything", headers={"Idempotency-Key": key})
    with payer.client(REQUESTER_SCOPES) as client:
        retried = client.get("/fhir/Patient/p1/$everything", headers={"Idempotency-Key": key})
    assert first.status_code == 200 and retried.status_code == 422


def resources(bundle: Resource) -> list[Resource]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] != "outcome"]


@pytest.mark.parametrize(
    "scope", ["system/Organization.rs", "system/Coverage.rs", MEMBER_MATCH_SCOPE]
)
def test_a_token_without_the_patient_is_refused_naming_the_scope(payer: Payer, scope: str) -> None:
    with payer.client(scope) as client:
        answer = client.get("/fhir/Patient/p1/$everything")
    assert answer.status_code == 403
    (issue,) = answer.json()["issue"]
    assert issue["code"] == "forbidden"
    assert "system/*.rs" in issue["details"]["text"]
    assert "system/Patient.rs" in issue["details"]["text"]


def test_a_type_asked_but_not_granted_is_left_out_unless_nothing_is_left(payer: Payer) -> None:
    with payer.client(PATIENT_AND_COVERAGE) as client:
        some = client.get("/fhir/Patient/p1/$everything", params={"_type": "Coverage,Encounter"})
        none = client.get("/fhir/Patient/p1/$everything", params={"_type": "Encounter"})
    assert some.status_code == 200, some.text
    assert types_of(some.json()) == {"Patient", "Coverage"}
    assert "Encounter" in outcome_text(some.json())
    assert none.status_code == 403
    assert "system/Encounter.rs" in none.json()["issue"][0]["details"]["text"]


def test_pages_keep_the_first_pages_limit_and_never_widen_it(payer: Payer) -> None:
    narrow, wide = payer.token(PATIENT_AND_COVERAGE), payer.token(REQUESTER_SCOPES)
    with payer.server.client_with(narrow) as client:
        first = client.get("/fhir/Patient/p1/$everything", params={"_count": "1"}).json()
    assert types_of(first) == {"Patient"} and outcome_of(first) is not None
    # The same client with a token granting every type follows the next links.
    with payer.server.client_with(wide) as client:
        later = pages(client, next(lk["url"] for lk in first["link"] if lk["relation"] == "next"))
    assert [types_of(page) for page in later] == [{"Coverage"}]
    assert all(outcome_of(page) is None for page in later)


def test_a_page_asked_with_a_narrower_token_leaves_out_and_names_what_it_does_not_grant(
    payer: Payer,
) -> None:
    narrow, wide = payer.token(PATIENT_AND_COVERAGE), payer.token(REQUESTER_SCOPES)
    with payer.server.client_with(wide) as client:
        first = client.get("/fhir/Patient/p1/$everything", params={"_count": "2"}).json()
    assert outcome_of(first) is None
    with payer.server.client_with(narrow) as client:
        later = pages(client, next(lk["url"] for lk in first["link"] if lk["relation"] == "next"))
    assert set().union(*(types_of(page) for page in later)) <= {"Patient", "Coverage"}
    assert any("Provenance" in outcome_text(page) for page in later)


def test_a_member_scoped_token_answers_as_before(payer: Payer) -> None:
    with payer.server.client_with(member_scoped_token(payer, "patient/*.rs")) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    assert outcome_of(bundle) is None and "Provenance" in types_of(bundle)
    with payer.server.client_with(member_scoped_token(payer, "patient/Patient.rs")) as client:
        bundle = client.get("/fhir/Patient/p1/$everything").json()
    assert types_of(bundle) == {"Patient"}
    assert "patient/*.rs" in outcome_text(bundle)


def member_scoped_token(payer: Payer, scope: str) -> str:
    base = payer.server.base_url
    now = int(time.time())
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": f"{base}/auth/token", "iat": now,
              "exp": now + 240, "jti": str(uuid.uuid4())}  # fmt: skip
    signed = jwt.encode({"alg": "ES384", "kid": payer.key.kid}, claims, payer.key,
                        algorithms=["ES384"])  # fmt: skip
    granted = httpx.post(
        f"{base}/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "patient": "p1",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": signed,
        },
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    return str(granted.json()["access_token"])


# -- searches


def test_a_search_gives_provenance_only_with_the_provenance_scope(payer: Payer) -> None:
    params = {"patient": "p1", "_revinclude": "Provenance:target"}
    with payer.client("system/Encounter.rs") as client:
        without = client.get("/fhir/Encounter", params=params).json()
    with payer.client("system/Encounter.rs system/Provenance.rs") as client:
        with_ = client.get("/fhir/Encounter", params=params).json()
    assert types_of(without) == {"Encounter"}
    assert "Provenance" in outcome_text(without)
    assert outcome_of(with_) is None
    provenance = [r for r in resources(with_) if r["resourceType"] == "Provenance"]
    assert {p["id"] for p in provenance} - {"p1-checkup-prov"}  # ours, beside the stored one
    assert "p1-checkup-prov" in {p["id"] for p in provenance}


def test_an_include_of_a_type_not_granted_is_left_out_and_named(payer: Payer) -> None:
    params = {"patient": "p1", "_include": "MedicationRequest:medication"}
    with payer.client("system/MedicationRequest.rs system/Provenance.rs") as client:
        bundle = client.get("/fhir/MedicationRequest", params=params).json()
    assert types_of(bundle) == {"MedicationRequest", "Provenance"}
    assert "Medication" in outcome_text(bundle).replace("MedicationRequest", "")


def test_a_patient_search_gives_provenance_only_with_the_provenance_scope(payer: Payer) -> None:
    params = {"identifier": "http://old.example/mb|M123", "_revinclude": "Provenance:target"}
    with payer.client("system/Patient.rs") as client:
        bundle = client.get("/fhir/Patient", params=params).json()
    assert types_of(bundle) == {"Patient"} and bundle["total"] == 1
    assert "Provenance" in outcome_text(bundle)
    with payer.client("system/Patient.rs system/Provenance.rs") as client:
        bundle = client.get("/fhir/Patient", params=params).json()
    assert types_of(bundle) == {"Patient", "Provenance"} and outcome_of(bundle) is None
