"""What the plan's own organization reads is labelled, never lowered, never lost (ADR 0052);
and only the plan's own organization reads without a consent."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.consent.labels import CONFIDENTIALITY, labelled
from payerbridge.consent.model import (
    ConsentPolicy,
    DenyReason,
    DisclosureRequest,
    Requester,
    is_own_organization,
)
from payerbridge.consent.segmentation import DEFAULT_SEGMENTATION
from payerbridge.consent.service import authorize_disclosure
from payerbridge.disclosure.release import release
from payerbridge.disclosure.scope import WHOLE_RECORD
from payerbridge.types import ClientId, MemberId
from tests.builders import WITHHELD_UNDER_REGULAR, a_member_reaching_sensitive_shared_data

ORDER = ["U", "L", "M", "N", "R", "V"]
OTHER_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

labels = st.lists(
    st.one_of(
        st.builds(lambda c: {"system": CONFIDENTIALITY, "code": c}, st.sampled_from(ORDER)),
        st.builds(
            lambda c: {"system": OTHER_SYSTEM, "code": c}, st.sampled_from(["PSY", "HIV", "X"])
        ),
        st.builds(lambda c: {"code": c}, st.text(max_size=3)),
    ),
    max_size=4,
)


def _resource(security: list[dict[str, Any]]) -> dict[str, Any]:
    meta: dict[str, Any] = {"versionId": "1"}
    if security:
        meta["security"] = security
    return {"resourceType": "Observation", "id": "o1", "status": "final", "meta": meta}


def _confidentiality(resource: dict[str, Any]) -> list[str]:
    return [
        label["code"]
        for label in resource["meta"]["security"]
        if label.get("system") == CONFIDENTIALITY
    ]


@given(labels, st.booleans())
def test_one_confidentiality_code_never_lower_than_the_sources_and_nothing_else_lost(
    security: list[dict[str, Any]], sensitive: bool
) -> None:
    resource = _resource(security)
    before = copy.deepcopy(resource)
    out = labelled(resource, sensitive=sensitive, segmentation=DEFAULT_SEGMENTATION)
    assert resource == before  # the stored record is never changed
    (code,) = _confidentiality(out)
    given_codes = [
        ORDER.index(label["code"]) for label in security if label.get("system") == CONFIDENTIALITY
    ]
    floor = ORDER.index("R" if sensitive else "N")
    assert ORDER.index(code) == max([floor, *given_codes])
    others = [label for label in security if label.get("system") != CONFIDENTIALITY]
    assert all(label in out["meta"]["security"] for label in others)
    assert {k: v for k, v in out.items() if k != "meta"} == {
        k: v for k, v in resource.items() if k != "meta"
    }


def test_a_sensitive_resource_is_labelled_with_its_category() -> None:
    data = a_member_reaching_sensitive_shared_data()
    program = data["Organization/part2-program"]
    out = labelled(program, sensitive=True, segmentation=DEFAULT_SEGMENTATION)
    codes = {(label.get("system"), label["code"]) for label in out["meta"]["security"]}
    assert (OTHER_SYSTEM, "42CFRPart2") in codes and (CONFIDENTIALITY, "R") in codes


def test_the_whole_record_is_released_and_exactly_what_regular_withholds_is_restricted() -> None:
    data = a_member_reaching_sensitive_shared_data()

    class Shared:
        def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
            return [data[r] for r in refs if r in data]

    records = [r for k, r in data.items() if k.split("/")[0] not in _SHARED]
    released = release(
        records, Shared(), ConsentPolicy.SENSITIVE, DEFAULT_SEGMENTATION, WHOLE_RECORD
    )
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in released.resources}
    assert set(by_key) == set(data)
    restricted = {k for k, r in by_key.items() if _confidentiality(r) == ["R"]}
    assert restricted == WITHHELD_UNDER_REGULAR


_SHARED = {"Organization", "Practitioner", "Medication", "Location", "PractitionerRole"}

NPIS = st.sampled_from(["1234567893", "1245319599", "1200000101", ""])


@given(NPIS, NPIS)
def test_only_the_data_holders_own_organization_reads_without_a_consent(
    requester_npi: str, holder_npi: str
) -> None:
    request = DisclosureRequest(
        member_id=MemberId("p1"),
        requester=Requester(ClientId("c"), requester_npi),
        at=datetime(2026, 11, 28, tzinfo=UTC),
        source_npi=holder_npi,
        supported_policies=frozenset(ConsentPolicy),
        hop="everything",
        request_id=None,
        code_sets="test",
    )

    class NoConsents:
        def for_member(self, member: MemberId, role: object) -> list[Any]:
            return []

    disclosure = authorize_disclosure(NoConsents(), request)  # type: ignore[arg-type]
    own = bool(holder_npi) and requester_npi == holder_npi
    assert is_own_organization(request.requester, holder_npi) is own
    assert disclosure.decision.permitted is own
    if own:
        assert disclosure.decision.policy is ConsentPolicy.SENSITIVE
        assert disclosure.event.detail["basis"] == "own-organization"
        assert disclosure.consent_id is None
    else:
        assert disclosure.decision.reason is DenyReason.NO_CONSENT
