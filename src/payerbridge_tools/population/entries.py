"""The entries of one member's history: how each FHIR resource in it is written.

:class:`ChartEntries` numbers the ids, applies security labels to sensitive
care, and writes Conditions, Observations, MedicationRequests, Procedures,
Immunizations, and the ExplanationOfBenefit for each claim and prior
authorization. :class:`~payerbridge_tools.population.chart.Chart` decides
what happens and when; the values these writers draw come from the same seeded
stream, in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from payerbridge_tools.population.clinical_codes import LABS, VITALS
from payerbridge_tools.population.households import Household, Member
from payerbridge_tools.population.network import PayerContext, derive_seed
from payerbridge_tools.population.shapes import (
    ACT_CODE,
    CONFIDENTIALITY,
    CPT,
    CVX,
    ICD10,
    LOINC,
    PRIOR_AUTH_PROFILE,
    RXNORM,
    TERMINOLOGY,
    UCUM,
    Code,
    Resource,
    concept,
    hl7_concept,
    iso_day,
    ref,
)


@dataclass(slots=True)
class Visit:
    """What one encounter produced so far, for its claim and prior authorizations."""

    day: int
    when: str
    encounter: str
    org: str
    practitioner: str
    items: list[Code] = field(default_factory=list)
    diagnoses: list[Code] = field(default_factory=list)
    authorizations: list[tuple[Code, Code]] = field(default_factory=list)


class ChartEntries:
    """Writes one member's history entries, in order, with ids numbered per member."""

    def __init__(self, ctx: PayerContext, household: Household, member: Member) -> None:
        self.ctx = ctx
        self.household = household
        self.member = member
        self.r = random.Random(derive_seed(ctx.seed, "history", household.index, member.pos)).random
        self.out: list[Resource] = []
        self.seq = 0
        self.suffix = f"-{household.index:07d}-{member.pos}-"
        self.patient = f"Patient/{member.patient_id}"
        self.coverage = f"Coverage/{ctx.abbr}-cov-{household.index:07d}-{member.pos}"

    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.ctx.abbr}-{kind}{self.suffix}{self.seq}"

    def _add(self, resource: Resource, labels: Code | None = None) -> None:
        if labels:
            resource["meta"] = {
                "security": [
                    {"system": ACT_CODE, "code": labels[0], "display": labels[1]},
                    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
                ]
            }
        self.out.append(resource)

    def _condition(
        self,
        visit: Visit,
        code: Code,
        onset: int,
        category: str,
        resolved_after: int | None = None,
        labels: Code | None = None,
    ) -> str:
        condition = self._id("cond")
        resource: Resource = {
            "resourceType": "Condition",
            "id": condition,
            "clinicalStatus": hl7_concept(
                "condition-clinical", "resolved" if resolved_after else "active"
            ),
            "verificationStatus": hl7_concept("condition-ver-status", "confirmed"),
            "category": [hl7_concept("condition-category", category)],
            "code": concept(ICD10, code),
            "subject": ref(self.patient),
            "encounter": ref(f"Encounter/{visit.encounter}"),
            "onsetDateTime": iso_day(onset),
            "recordedDate": visit.when,
        }
        if resolved_after:
            resource["abatementDateTime"] = iso_day(min(onset + resolved_after, self.ctx.today))
        self._add(resource, labels)
        return condition

    def _vital(self, visit: Visit, key: str, value: float) -> None:
        loinc, display, unit = VITALS[key]
        self._observation(
            visit,
            "vital-signs",
            (loinc, display),
            {
                "valueQuantity": {
                    "value": round(value, 1),
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                }
            },
        )

    def _lab(self, visit: Visit, key: str, abnormal: bool) -> None:
        loinc, display, unit, normal, high = LABS[key]
        low, top = high if abnormal else normal
        value = round(low + self.r() * (top - low), 1)
        self._observation(
            visit,
            "laboratory",
            (loinc, display),
            {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}},
        )

    def _observation(
        self, visit: Visit, category: str, code: Code, value: dict[str, object]
    ) -> None:
        display = "Vital Signs" if category == "vital-signs" else "Laboratory"
        self._add(
            {
                "resourceType": "Observation",
                "id": self._id("obs"),
                "status": "final",
                "category": [concept(TERMINOLOGY + "observation-category", (category, display))],
                "code": concept(LOINC, code),
                "subject": ref(self.patient),
                "encounter": ref(f"Encounter/{visit.encounter}"),
                "effectiveDateTime": visit.when,
                **value,
            }
        )

    def _medication(
        self,
        visit: Visit,
        medication: Code,
        condition: str | None,
        status: str,
        labels: Code | None,
    ) -> None:
        resource: Resource = {
            "resourceType": "MedicationRequest",
            "id": self._id("medrx"),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": concept(RXNORM, medication),
            "subject": ref(self.patient),
            "encounter": ref(f"Encounter/{visit.encounter}"),
            "authoredOn": visit.when,
            "requester": ref(f"Practitioner/{visit.practitioner}"),
            "dosageInstruction": [{"text": "Take as directed"}],
        }
        if condition:
            resource["reasonReference"] = [ref(f"Condition/{condition}")]
        self._add(resource, labels)

    def _procedure(self, visit: Visit, system: str, code: Code, bill: bool = True) -> None:
        self._add(
            {
                "resourceType": "Procedure",
                "id": self._id("proc"),
                "status": "completed",
                "code": concept(system, code),
                "subject": ref(self.patient),
                "encounter": ref(f"Encounter/{visit.encounter}"),
                "performedDateTime": visit.when,
            }
        )
        if bill:
            visit.items.append(code)

    def _claim(self, visit: Visit, labels: Code | None) -> None:
        claim = self._id("eob")
        created = iso_day(min(visit.day + 3 + int(self.r() * 25), self.ctx.today))
        diagnoses = list(dict.fromkeys(visit.diagnoses))
        serviced = iso_day(visit.day)
        self._add(
            {
                "resourceType": "ExplanationOfBenefit",
                "id": claim,
                "identifier": [
                    {
                        "system": f"http://{self.ctx.payer.slug}.example.org/claim-id",
                        "value": claim.upper(),
                    }
                ],
                "status": "active",
                "type": concept(TERMINOLOGY + "claim-type", ("professional", "Professional")),
                "use": "claim",
                "patient": ref(self.patient),
                "billablePeriod": {"start": serviced, "end": serviced},
                "created": created,
                "insurer": {
                    "reference": f"Organization/{self.ctx.org_id}",
                    "display": self.ctx.payer.name,
                },
                "provider": ref(f"Organization/{visit.org}"),
                "outcome": "complete",
                "diagnosis": [
                    {"sequence": n, "diagnosisCodeableConcept": concept(ICD10, code)}
                    for n, code in enumerate(diagnoses, 1)
                ],
                "insurance": [{"focal": True, "coverage": ref(self.coverage)}],
                "item": [
                    {
                        "sequence": n,
                        "diagnosisSequence": [1],
                        "productOrService": concept(CPT, code),
                        "servicedDate": serviced,
                        "encounter": [ref(f"Encounter/{visit.encounter}")],
                    }
                    for n, code in enumerate(visit.items, 1)
                ],
            },
            labels,
        )

    def _prior_authorization(self, visit: Visit, service: Code, diagnosis: Code) -> None:
        r = self.r
        authorization = self._id("priorauth")
        created = min(visit.day + 1 + int(r() * 5), self.ctx.today)
        planned = created + 7 + int(r() * 40)
        self._add(
            {
                "resourceType": "ExplanationOfBenefit",
                "id": authorization,
                "meta": {"profile": [PRIOR_AUTH_PROFILE]},
                "identifier": [
                    {
                        "system": f"http://{self.ctx.payer.slug}.example.org/prior-auth",
                        "value": authorization.upper(),
                    }
                ],
                "status": "active",
                "type": concept(TERMINOLOGY + "claim-type", ("professional", "Professional")),
                "use": "preauthorization",
                "patient": ref(self.patient),
                "created": iso_day(created),
                "insurer": {
                    "reference": f"Organization/{self.ctx.org_id}",
                    "display": self.ctx.payer.name,
                },
                "provider": ref(f"Organization/{visit.org}"),
                "outcome": "complete",
                "preAuthRef": [authorization.upper()],
                "preAuthRefPeriod": [{"start": iso_day(created), "end": iso_day(created + 90)}],
                "diagnosis": [
                    {"sequence": 1, "diagnosisCodeableConcept": concept(ICD10, diagnosis)}
                ],
                "insurance": [{"focal": True, "coverage": ref(self.coverage)}],
                "item": [
                    {
                        "sequence": 1,
                        "productOrService": concept(CPT, service),
                        "servicedDate": iso_day(planned),
                        "quantity": {"value": 1},
                    }
                ],
            }
        )

    def _immunization(self, day: int, vaccine: Code) -> None:
        self._add(
            {
                "resourceType": "Immunization",
                "id": self._id("imm"),
                "status": "completed",
                "vaccineCode": concept(CVX, vaccine),
                "patient": ref(self.patient),
                "occurrenceDateTime": iso_day(day),
                "primarySource": True,
            }
        )
