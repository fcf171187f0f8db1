"""The HRex Consent on the wire: what we accept, what we reject and where, what we send."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from payerbridge.consent import ConsentPolicy, Purpose, Requester, evaluate
from payerbridge.consent.hrex import (
    Provision,
    build_hrex_consent,
    consent_hash,
    parse_hrex_consent,
)
from payerbridge.consent.model import ConsentId, ConsentRequest
from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.fhir import codes
from payerbridge.routing.model import Organization
from payerbridge.types import ClientId, MemberId
from tests import fhir_profiles
from tests.builders import member_match_parameters

NEW_YORK = ZoneInfo("America/New_York")
US = Organization("Old Health Plan", "1245319599")
THEM = Organization("New Health Plan", "1234567893")
REQUESTER = Requester(ClientId("client-new-plan"), THEM.npi)
NPI = codes.NPI_SYSTEM


def a_consent(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "consent_id": "consent-1",
        "patient_ref": "Patient/1",
        "performer_ref": "Patient/1",
        "policy": ConsentPolicy.REGULAR,
        "start": date(2026, 1, 1),
        "end": date(2026, 12, 31),
        "source": US,
        "recipient": THEM,
        "source_reference": "DocumentReference/optin-1",
    }
    arguments.update(changes)
    terms = {
        name: arguments.pop(name) for name in ("policy", "start", "end", "source", "recipient")
    }
    return build_hrex_consent(provision=Provision(**terms), **arguments)


def parse(resource: Any, requester: Requester = REQUESTER) -> Any:
    return parse_hrex_consent(resource, our_npi=US.npi, requester=requester, zone=NEW_YORK)


def issues_of(resource: Any, requester: Requester = REQUESTER) -> list[Issue]:
    with pytest.raises(UnprocessableRequest) as caught:
        parse(resource, requester)
    return caught.value.issues


def one_issue(resource: Any) -> Issue:
    issues = issues_of(resource)
    assert len(issues) == 1, issues
    return issues[0]


def without(resource: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    *parents, last = path.split(".")
    node = changed
    for name in parents:
        node = node[name]
    del node[last]
    return changed


def with_value(resource: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    *parents, last = path.split(".")
    node = changed
    for name in parents:
        node = node[name]
    node[last] = value
    return changed


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def actor(role: tuple[str, str], reference: dict[str, Any]) -> dict[str, Any]:
    return {"role": coded(*role), "reference": reference}


SOURCE_ROLE = (codes.PROVENANCE_PARTICIPANT, "performer")
RECIPIENT_ROLE = ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP")


# -- accepted


def test_what_we_build_is_what_we_accept() -> None:
    resource = a_consent()
    parsed = parse(resource)
    assert parsed.policy is ConsentPolicy.REGULAR
    assert parsed.period_start == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert parsed.period_end == datetime(2027, 1, 1, 5, tzinfo=UTC) - timedelta(microseconds=1)
    assert parsed.source_npi == US.npi and parsed.recipient_npis == (THEM.npi,)
    assert parsed.client_id == REQUESTER.client_id
    assert parsed.performer == "Patient/1"
    assert parsed.source_reference == "DocumentReference/optin-1"
    assert parsed.resource_hash == consent_hash(resource) and len(parsed.resource_hash) == 64


def test_the_hash_is_canonical_and_changes_with_the_content() -> None:
    resource = a_consent()
    reordered = dict(reversed(list(resource.items())))
    assert consent_hash(reordered) == consent_hash(resource)
    assert consent_hash(a_consent(policy=ConsentPolicy.SENSITIVE)) != consent_hash(resource)


def test_a_parsed_consent_becomes_a_record_the_engine_permits() -> None:
    record = parse(a_consent()).to_record(ConsentId("c-9"), member_id=MemberId("member-7"))
    assert (record.consent_id, record.member_id, record.revoked_at) == ("c-9", "member-7", None)
    decision = evaluate(
        record,
        ConsentRequest(
            member_id=MemberId("member-7"),
            requester=REQUESTER,
            purpose=Purpose.PAYER_TO_PAYER,
            at_time=datetime(2026, 6, 1, tzinfo=UTC),
            data_scope=ConsentPolicy.SENSITIVE,
            source_npi=US.npi,
        ),
    )
    assert decision.permitted and decision.policy is ConsentPolicy.REGULAR


def test_the_consent_member_match_requests_carry_is_accepted_by_the_old_payer() -> None:
    parameters = member_match_parameters(our_npi=THEM.npi, partner_npi=US.npi)
    consent = next(p["resource"] for p in parameters["parameter"] if p["name"] == "Consent")
    assert parse(consent).policy is ConsentPolicy.SENSITIVE


def test_organizations_may_be_contained_and_consents_bidirectional() -> None:
    resource = a_consent()
    resource["contained"] = [
        {
            "resourceType": "Organization",
            "id": "old",
            "identifier": [{"system": NPI, "value": US.npi}],
        }
    ]
    resource["provision"]["actor"] = [
        actor(SOURCE_ROLE, {"reference": "#old"}),
        actor(RECIPIENT_ROLE, {"identifier": {"system": NPI, "value": "1679576722"}}),
        actor(RECIPIENT_ROLE, {"identifier": {"system": NPI, "value": THEM.npi}}),
        actor(("http://example.org/roles", "witness"), {"display": "someone else"}),
    ]
    assert parse(resource).recipient_npis == ("1679576722", THEM.npi)


def test_a_contained_representative_may_give_consent() -> None:
    resource = a_consent(performer_ref="#rep")
    resource["contained"] = [{"resourceType": "RelatedPerson", "id": "rep"}]
    assert parse(resource).performer == "#rep"


def test_a_logical_source_reference_is_accepted() -> None:
    resource = with_value(
        a_consent(), "sourceReference", {"identifier": {"system": "urn:docs", "value": "f-1"}}
    )
    assert parse(resource).source_reference == "urn:docs|f-1"


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        ("2026", "2026", datetime(2026, 1, 1, 5), datetime(2027, 1, 1, 5)),
        ("2026-02", "2026-02", datetime(2026, 2, 1, 5), datetime(2026, 3, 1, 5)),
        ("2024-02", "2024-02", datetime(2024, 2, 1, 5), datetime(2024, 3, 1, 5)),
        ("2026-07-01", "2026-07-01", datetime(2026, 7, 1, 4), datetime(2026, 7, 2, 4)),
        (
            "2026-07-01T10:00:00Z",
            "2026-12-31T23:59:59-05:00",
            datetime(2026, 7, 1, 10),
            datetime(2027, 1, 1, 4, 59, 59, 1),
        ),
        (
            "2026-07-01T10:00:00.25+02:00",
            "2026-07-01T10:00:00.25+02:00",
            datetime(2026, 7, 1, 8, 0, 0, 250000),
            datetime(2026, 7, 1, 8, 0, 0, 250001),
        ),
    ],
)
def test_period_bounds_cover_whole_days_or_name_an_instant(
    start: str, end: str, first: datetime, last: datetime
) -> None:
    """``last`` is the first instant *after* the period; the end is one microsecond before it."""
    resource = with_value(a_consent(), "provision.period", {"start": start, "end": end})
    parsed = parse(resource)
    assert parsed.period_start == first.replace(tzinfo=UTC)
    assert parsed.period_end == last.replace(tzinfo=UTC) - timedelta(microseconds=1)


def test_the_official_hrex_example_consent_is_accepted() -> None:
    example = fhir_profiles.load("hrex-1.0.0", "example/Parameters-member-match-in")
    consent = next(p["resource"] for p in example["parameter"] if p["name"] == "Consent")
    parsed = parse_hrex_consent(
        consent,
        our_npi="9876543210",
        requester=Requester(ClientId("c"), "0123456789"),
        zone=NEW_YORK,
    )
    assert parsed.policy is ConsentPolicy.REGULAR
    assert parsed.source_reference == "http://example.org/DocumentReference/someconsent.pdf"


# -- rejected, naming the element


@pytest.mark.parametrize(
    "path",
    [
        "status",
        "scope",
        "category",
        "patient",
        "performer",
        "sourceReference",
        "policy",
        "provision",
        "provision.type",
        "provision.period",
        "provision.period.start",
        "provision.period.end",
        "provision.action",
    ],
)
def test_every_required_element_missing_is_named(path: str) -> None:
    issue = one_issue(without(a_consent(), path))
    assert issue.expression == f"Consent.{path}"
    assert issue.code == "required"
    assert f"Consent.{path} is required" in issue.text


def test_missing_actors_name_both_slices() -> None:
    issues = issues_of(without(a_consent(), "provision.actor"))
    assert [(i.expression, i.code) for i in issues] == [("Consent.provision.actor", "required")] * 2
    assert "source actor" in issues[0].text and "recipient actor" in issues[1].text


@pytest.mark.parametrize(
    ("path", "value", "expression", "code"),
    [
        ("status", "draft", "Consent.status", "value"),
        (
            "scope",
            coded("http://terminology.hl7.org/CodeSystem/consentscope", "research"),
            "Consent.scope",
            "value",
        ),
        ("category", [coded("http://loinc.org", "59284-0")], "Consent.category", "required"),
        ("provision.type", "deny", "Consent.provision.type", "value"),
        (
            "provision.action",
            [coded("http://terminology.hl7.org/CodeSystem/consentaction", "access")],
            "Consent.provision.action",
            "value",
        ),
        (
            "provision.action",
            [coded("http://terminology.hl7.org/CodeSystem/consentaction", "disclose")] * 2,
            "Consent.provision.action",
            "structure",
        ),
        (
            "performer",
            [{"reference": "Patient/1"}, {"reference": "Patient/2"}],
            "Consent.performer",
            "structure",
        ),
        ("performer", [{"reference": "Device/1"}], "Consent.performer.reference", "value"),
        ("performer", [{"reference": "#nobody"}], "Consent.performer.reference", "value"),
        ("performer", [{"display": "the member"}], "Consent.performer.reference", "required"),
        ("sourceReference", {"reference": "Binary/scan-1"}, "Consent.sourceReference", "value"),
        ("sourceReference", {"display": "signed form"}, "Consent.sourceReference", "required"),
        ("policy", [{"authority": "https://example.org"}], "Consent.policy[0].uri", "required"),
        (
            "policy",
            [{"uri": "http://example.org/policy#everything"}],
            "Consent.policy[0].uri",
            "code-invalid",
        ),
        (
            "policy",
            [{"uri": codes.CONSENT_POLICY["regular"]}, {"uri": codes.CONSENT_POLICY["sensitive"]}],
            "Consent.policy",
            "structure",
        ),
        ("policy", [{"uri": codes.CONSENT_POLICY["regular"]}] * 2, "Consent.policy", "structure"),
    ],
)
def test_wrong_values_are_named(path: str, value: Any, expression: str, code: str) -> None:
    issue = one_issue(with_value(a_consent(), path, value))
    assert (issue.expression, issue.code) == (expression, code)


def test_an_attachment_instead_of_a_document_reference_is_named() -> None:
    resource = without(a_consent(), "sourceReference")
    resource["sourceAttachment"] = {"contentType": "application/pdf", "url": "http://x/f.pdf"}
    issue = one_issue(resource)
    assert (issue.expression, issue.code) == ("Consent.sourceAttachment", "value")


@pytest.mark.parametrize(
    "name", ["securityLabel", "purpose", "class", "code", "dataPeriod", "data", "provision"]
)
def test_elements_hrex_forbids_are_named(name: str) -> None:
    resource = a_consent()
    resource["provision"][name] = [{"anything": True}]
    issue = one_issue(resource)
    assert (issue.expression, issue.code) == (f"Consent.provision.{name}", "structure")
    assert "solely in policy" in issue.text


@pytest.mark.parametrize(
    "value",
    [
        "2026-13",
        "2026-02-30",
        "2026-07-01T10:00:00",
        "2026-07-01T10:00Z",
        "07/01/2026",
        "2026-07-01T24:00:00Z",
        "２０２６",
        20260701,
        "",
    ],
)
def test_a_bound_that_is_not_a_fhir_datetime_is_named(value: Any) -> None:
    issue = one_issue(with_value(a_consent(), "provision.period.end", value))
    assert (issue.expression, issue.code) == ("Consent.provision.period.end", "value")


def test_a_period_that_ends_before_it_starts_is_named() -> None:
    period = {"start": "2026-07-02", "end": "2026-07-01"}
    issue = one_issue(with_value(a_consent(), "provision.period", period))
    assert (issue.expression, issue.code) == ("Consent.provision.period", "invariant")


def test_a_recipient_that_is_not_the_caller_breaks_a_business_rule() -> None:
    stranger = Requester(ClientId("client-stranger"), "1679576722")
    issues = issues_of(a_consent(), stranger)
    assert [(i.expression, i.code) for i in issues] == [
        ("Consent.provision.actor", "business-rule")
    ]
    assert "1679576722" in issues[0].text and "recipient" in issues[0].text


def test_a_source_that_is_not_this_payer_breaks_a_business_rule() -> None:
    other = Organization("Another Plan", "1679576722")
    issue = one_issue(a_consent(source=other))
    assert (issue.expression, issue.code) == ("Consent.provision.actor", "business-rule")
    assert US.npi in issue.text and "source" in issue.text


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Organization/old"},  # no NPI to compare
        {"identifier": {"system": "http://example.org/tax-id", "value": US.npi}},
        {"type": "Practitioner", "identifier": {"system": NPI, "value": US.npi}},
        {"reference": "#missing"},
    ],
)
def test_an_actor_not_identified_by_organization_npi_is_named(reference: dict[str, Any]) -> None:
    resource = a_consent()
    resource["provision"]["actor"][0]["reference"] = reference
    issues = issues_of(resource)
    assert [(i.expression, i.code) for i in issues] == [
        ("Consent.provision.actor[0].reference", "value")
    ]


def test_every_problem_is_reported_at_once() -> None:
    resource = without(a_consent(source=Organization("Another", "1679576722")), "status")
    resource["policy"].append({"uri": codes.CONSENT_POLICY["sensitive"]})
    resource["provision"]["purpose"] = [{"code": "TREAT"}]
    expressions = {issue.expression for issue in issues_of(resource)}
    assert expressions == {
        "Consent.status",
        "Consent.policy",
        "Consent.provision.purpose",
        "Consent.provision.actor",
    }


def test_issues_never_echo_member_data() -> None:
    resource = a_consent(performer_ref="RelatedPerson/ana-garcia", patient_ref="Patient/ana-garcia")
    resource["provision"]["period"] = {"start": "Ana Garcia 1980-02-03", "end": "M123"}
    resource["policy"] = [{"uri": "urn:ana-garcia"}]
    resource["status"] = "ana-garcia"
    text = " ".join(f"{i.text} {i.expression}" for i in issues_of(resource))
    for secret in ("ana", "garcia", "1980", "M123"):
        assert secret not in text.lower()


@pytest.mark.parametrize("body", [None, [], {"resourceType": "Patient"}, "Consent"])
def test_anything_but_a_consent_is_refused(body: Any) -> None:
    issue = one_issue(body)
    assert (issue.expression, issue.code) == ("Consent", "structure")


# -- building


def test_aware_bounds_are_sent_with_their_offset_and_read_back_as_instants() -> None:
    eastern = timezone(timedelta(hours=-5))
    start = datetime(2026, 1, 1, 9, 30, tzinfo=eastern)
    end = datetime(2026, 12, 31, 23, 59, 59, tzinfo=eastern)
    resource = a_consent(start=start, end=end)
    assert resource["provision"]["period"] == {
        "start": "2026-01-01T09:30:00-05:00",
        "end": "2026-12-31T23:59:59-05:00",
    }
    parsed = parse(resource)
    assert (parsed.period_start, parsed.period_end) == (start, end)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2026, 1, 1), date(2026, 12, 31), "start must be timezone-aware"),
        (date(2026, 1, 1), datetime(2026, 12, 31), "end must be timezone-aware"),
        (date(2026, 2, 1), date(2026, 1, 31), "end on or after its start"),
    ],
)
def test_build_refuses_naive_times_and_backward_periods(
    start: date, end: date, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        a_consent(start=start, end=end)


# -- conformance to the HRex 1.0.0 StructureDefinition


def _matches(value: Any, pattern: Any) -> bool:
    """FHIR pattern[x]: every element of the pattern appears in the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            _matches(value.get(key), wanted) for key, wanted in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(_matches(item, wanted) for item in value) for wanted in pattern
        )
    return value == pattern


class _Profile:
    """Just enough of a StructureDefinition walker for cardinality, fixed and pattern values."""

    def __init__(self, sd: dict[str, Any], value_sets: dict[str, set[str]]) -> None:
        self.elements = {e["id"]: e for e in sd["snapshot"]["element"]}
        self.value_sets = value_sets

    def children(self, node: Any, part: str, element_id: str) -> list[Any]:
        name, _, slice_name = part.partition(":")
        values: list[Any] = []
        if isinstance(node, dict):
            keys = (
                [k for k in node if k.startswith(name[:-3]) and k[len(name) - 3 :][:1].isupper()]
                if name.endswith("[x]")
                else [name]
            )
            for key in keys:
                value = node.get(key)
                if value is not None:
                    values.extend(value if isinstance(value, list) else [value])
        if slice_name and "slicing" in self.elements.get(element_id.rsplit(":", 1)[0], {}):
            values = [v for v in values if self.in_slice(v, element_id)]
        return values

    def in_slice(self, value: Any, slice_id: str) -> bool:
        slicing = self.elements[slice_id.rsplit(":", 1)[0]]["slicing"]
        for discriminator in slicing["discriminator"]:
            path = discriminator["path"]
            element = (
                self.elements[slice_id]
                if path == "$this"
                else next(e for i, e in self.elements.items() if i.startswith(f"{slice_id}.{path}"))
            )
            target = value if path == "$this" else (value or {}).get(path)
            pattern = next(
                (v for k, v in element.items() if k.startswith(("pattern", "fixed"))), None
            )
            if pattern is not None and not _matches(target, pattern):
                return False
            binding = element.get("binding", {}).get("valueSet")
            if pattern is None and binding and target not in self.value_sets[binding]:
                return False
        return True

    def resolve(self, resource: dict[str, Any], element_id: str) -> list[Any]:
        nodes: list[Any] = [resource]
        parts = element_id.split(".")
        for depth in range(1, len(parts)):
            current = ".".join(parts[: depth + 1])
            nodes = [c for node in nodes for c in self.children(node, parts[depth], current)]
        return nodes

    def violations(self, resource: dict[str, Any]) -> list[str]:
        found = []
        for element_id, element in self.elements.items():
            if "." not in element_id:
                continue
            parent_id, part = element_id.rsplit(".", 1)
            for parent in self.resolve(resource, parent_id):
                values = self.children(parent, part, element_id)
                if len(values) < element.get("min", 0):
                    found.append(f"{element_id}: min {element['min']}, found {len(values)}")
                if element.get("max") not in (None, "*") and len(values) > int(element["max"]):
                    found.append(f"{element_id}: max {element['max']}, found {len(values)}")
                for key, wanted in element.items():
                    if key.startswith("fixed") and any(v != wanted for v in values):
                        found.append(f"{element_id}: not the fixed value {wanted}")
                    if key.startswith("pattern") and not all(_matches(v, wanted) for v in values):
                        found.append(f"{element_id}: does not match the pattern {wanted}")
        return found


@pytest.fixture(scope="module")
def hrex_consent_profile() -> _Profile:
    sd = fhir_profiles.load("hrex-1.0.0", "StructureDefinition-hrex-consent")
    value_set = fhir_profiles.load("hrex-1.0.0", "ValueSet-hrex-consent-policy")
    codes_in = {c["code"] for i in value_set["compose"]["include"] for c in i["concept"]}
    return _Profile(sd, {value_set["url"]: codes_in})


@pytest.mark.parametrize("policy", list(ConsentPolicy))
def test_what_we_build_conforms_to_the_hrex_1_0_0_profile(
    hrex_consent_profile: _Profile, policy: ConsentPolicy
) -> None:
    resource = a_consent(policy=policy)
    assert hrex_consent_profile.violations(resource) == []
    assert resource["meta"]["profile"] == [codes.HREX_CONSENT_PROFILE]
    assert {codes.CONSENT_POLICY[p] for p in ConsentPolicy} <= next(
        iter(hrex_consent_profile.value_sets.values())
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("status", "draft"),
        ("provision.type", "deny"),
        ("policy", [{"uri": "http://example.org/other"}]),
        ("provision.actor", []),
        ("provision.code", [{"text": "labs"}]),
    ],
)
def test_the_conformance_check_catches_what_the_profile_forbids(
    hrex_consent_profile: _Profile, path: str, value: Any
) -> None:
    assert hrex_consent_profile.violations(with_value(a_consent(), path, value))
    with pytest.raises(UnprocessableRequest):
        parse(with_value(a_consent(), path, value))
