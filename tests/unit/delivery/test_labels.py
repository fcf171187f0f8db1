"""What the plan's own FHIR server receives is labelled as the plan's own reads label it
(ADR 0052), however the store cuts a delivery into batches: a shared resource that only
withheld records reach is ``R`` wherever it is held, and one that goes with any member
is ``N``; a member's records, as her own release labels them."""

from __future__ import annotations

import copy
from itertools import groupby
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.consent.labels import CONFIDENTIALITY
from payerbridge.consent.model import ConsentPolicy
from payerbridge.delivery.model import DestinationAnswer, DestinationPolicy
from payerbridge.delivery.service import DeliverOnce, deliver_once
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.disclosure.release import SHARED_TYPES, release
from payerbridge.disclosure.scope import WHOLE_RECORD
from payerbridge.fhir.resources import compartment_patient
from tests.builders import a_member_reaching_sensitive_shared_data
from tests.fakes import InMemoryAuditLog, InMemoryTransactions
from tests.unit.delivery.test_service import Deliveries, Held

Resource = dict[str, Any]


def _key(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _member_of(resource: Resource, by_key: dict[str, Resource]) -> str | None:
    """Whose compartment the store files ``resource`` under: a Provenance that names no
    Patient under its first target's (``store.importer``)."""
    patient = compartment_patient(resource)
    if patient is None and resource["resourceType"] == "Provenance":
        target = by_key.get(resource["target"][0]["reference"])
        patient = None if target is None else compartment_patient(target)
    return patient


class Cut(Held):
    """Held as the store cuts it: what no compartment holds first, then each member whole,
    a batch closed at a member's end once it holds ``sizes[n]`` resources."""

    def __init__(self, resources: list[Resource], sizes: list[int]) -> None:
        super().__init__(resources)
        self.sizes = sizes

    def batches(self, subject: str) -> Any:
        by_key = {_key(r): r for r in self.resources}

        def owner(r: Resource) -> tuple[bool, str]:
            patient = _member_of(r, by_key)
            return patient is not None, patient or ""

        ordered = sorted(self.resources, key=lambda r: (*owner(r), _key(r)))
        batch: list[Resource] = []
        n = 0
        for _, group in groupby(ordered, key=owner):
            batch += copy.deepcopy(list(group))
            if len(batch) >= self.sizes[n % len(self.sizes)]:
                yield batch
                batch, n = [], n + 1
        if batch:
            yield batch


class Keeping:
    id = "plan"
    types = None

    def __init__(self) -> None:
        self.kept: dict[str, Resource] = {}
        self.posted = 0

    def post_transaction(self, bundle: dict[str, Any]) -> DestinationAnswer:
        self.posted += len(bundle["entry"])
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if "id" in resource:
                self.kept[_key(resource)] = resource
        return DestinationAnswer(written=True, status=200)


def _confidentiality(resource: Resource) -> str:
    (code,) = [
        s["code"] for s in resource["meta"]["security"] if s.get("system") == CONFIDENTIALITY
    ]
    return str(code)


def _population(plans: list[tuple[frozenset[str], bool]]) -> list[Resource]:
    """Members p0, p1... each with the records of ``plans[n]`` (kinds of the builder's
    member) and, when its flag says so, a plain visit to the HIV specialist; the shared
    resources once, whether any member reaches them or not."""
    found: dict[str, Resource] = {}
    for n, (kinds, visits) in enumerate(plans):
        pid = f"p{n}"
        for key, resource in a_member_reaching_sensitive_shared_data(pid).items():
            kind = key.split("/")[1].removeprefix(f"{pid}-").removesuffix("-prov")
            if resource["resourceType"] == "Provenance":
                if kind in kinds:  # with the record it is about
                    found[key] = resource
            elif kind in kinds or resource["resourceType"] == "Patient":
                found[key] = resource
            elif compartment_patient(resource) is None:
                found[key] = resource  # shared: held once, whoever reaches it
        if visits:
            visit = {
                "resourceType": "Encounter",
                "id": f"{pid}-visit",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
                "participant": [{"individual": {"reference": "Practitioner/hiv-specialist"}}],
            }
            found[_key(visit)] = visit
    return list(found.values())


class Reader:
    def __init__(self, resources: list[Resource]) -> None:
        self.by_key = {_key(r): r for r in resources}

    def read_many(self, refs: list[str]) -> list[Resource]:
        return [copy.deepcopy(self.by_key[r]) for r in refs if r in self.by_key]


def _as_read(resources: list[Resource]) -> dict[str, str]:
    """Each resource's label as the plan's own reads give it: a member's records by her
    release; a shared one ``N`` when any member's release labels it so, else ``R``."""
    reader = Reader(resources)
    labels: dict[str, str] = {}
    by_key = {_key(r): r for r in resources}
    members = {_member_of(r, by_key) for r in resources} - {None}
    for pid in sorted(m for m in members if m is not None):
        own = [copy.deepcopy(r) for r in resources if _member_of(r, by_key) == pid]
        read = release(own, reader, ConsentPolicy.SENSITIVE, scope=WHOLE_RECORD)
        for resource in read.records:
            labels[_key(resource)] = _confidentiality(resource)
        for resource in read.shared:
            if labels.get(_key(resource)) != "N":
                labels[_key(resource)] = _confidentiality(resource)
    for resource in resources:
        labels.setdefault(_key(resource), "R")  # reached by no member: it goes with none
    return labels


KINDS = ["cov", "arv-order", "bp-order", "part2-claim", "checkup"]
plans = st.lists(
    st.tuples(st.frozensets(st.sampled_from(KINDS)), st.booleans()), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(plans, st.lists(st.integers(1, 30), min_size=1, max_size=4))
def test_delivered_labels_are_the_plans_own_reads_however_batches_fall(
    plan: list[tuple[frozenset[str], bool]], sizes: list[int]
) -> None:
    resources = _population(plan)
    server = Keeping()
    deliveries = Deliveries()
    transactions = InMemoryTransactions(InMemoryAuditLog(), deliveries)
    unit = DestinationUnit(
        transactions, deliveries, None, Cut(resources, sizes),  # type: ignore[arg-type]
        {"plan": server}, {"plan": DestinationPolicy(max_entries=500)},
    )  # fmt: skip
    with unit:
        key = deliveries.open(unit, subject="onboarding:o1", destination_id="plan", run=0)
    assert deliver_once(DeliverOnce(key), unit) is None
    expected = _as_read(resources)
    got = {ref: _confidentiality(r) for ref, r in server.kept.items()}
    assert got == {ref: expected[ref] for ref in got}
    # Everything held arrived, each once (some by criteria, which names no id).
    assert server.posted == len(resources)
    assert {k for k in got if k.partition("/")[0] in SHARED_TYPES} == {
        _key(r) for r in resources if r["resourceType"] in SHARED_TYPES
    }


def test_a_part_2_claim_in_a_later_batch_than_its_program_arrives_restricted() -> None:
    # The store holds the program (an Organization) in the first batch, the member's claim
    # in hers: judged apart, the claim looked plain and arrived "N".
    resources = _population([(frozenset(KINDS), False), (frozenset(), False)])
    server = Keeping()
    deliveries = Deliveries()
    transactions = InMemoryTransactions(InMemoryAuditLog(), deliveries)
    unit = DestinationUnit(
        transactions, deliveries, None, Cut(resources, [1]),  # type: ignore[arg-type]
        {"plan": server}, {"plan": DestinationPolicy(max_entries=500)},
    )  # fmt: skip
    with unit:
        key = deliveries.open(unit, subject="onboarding:o1", destination_id="plan", run=0)
    assert deliver_once(DeliverOnce(key), unit) is None
    assert _confidentiality(server.kept["ExplanationOfBenefit/p0-part2-claim"]) == "R"
    assert _confidentiality(server.kept["Organization/part2-program"]) == "R"
    # What goes with a member is "N" though it is held in another batch than hers.
    assert _confidentiality(server.kept["Practitioner/family-doctor"]) == "N"
    assert _confidentiality(server.kept["Practitioner/hiv-specialist"]) == "R"
