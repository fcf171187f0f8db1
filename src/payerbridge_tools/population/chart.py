"""One member's clinical and claims history: who they are, which visits they have, what happens.

The chart draws the member's chronic conditions, physique, allergy and any
sensitive care, plans visits over the history window (wellness, follow-up,
acute, emergency, sensitive), decides what each visit finds, measures and
prescribes, and schedules immunizations. Every draw comes from the member's own
seed, so a member's history never depends on anyone else's.
"""

from __future__ import annotations

from datetime import date

from payerbridge_tools.population.clinical_codes import (
    ADOLESCENT,
    ALLERGIES,
    CHRONIC,
    COVID,
    DEPRESSION_SCREEN,
    EMERGENCIES,
    ENCOUNTER_TYPE,
    FLU,
    INFANT_SCHEDULE,
    OBESITY,
    PREVENTIVE_CPT,
    PROBLEMS,
    SENIOR,
    SENSITIVE,
    VENIPUNCTURE,
    VISIT_CPT,
    Chronic,
    Problem,
    Sensitive,
)
from payerbridge_tools.population.entries import ChartEntries, Visit
from payerbridge_tools.population.households import Household, Member
from payerbridge_tools.population.network import Draw, PayerContext
from payerbridge_tools.population.providers import (
    HOSPITAL,
    ORG_PRACTITIONERS,
    PEDIATRICS,
    URGENT_CARE,
)
from payerbridge_tools.population.shapes import (
    ACT_CODE,
    CPT,
    LOINC,
    SNOMED,
    UCUM,
    Code,
    Resource,
    concept,
    hl7_concept,
    ref,
    stamp,
)


class Chart(ChartEntries):
    """One member's history over the window, built visit by visit from its own seed."""

    def __init__(self, ctx: PayerContext, household: Household, member: Member) -> None:
        super().__init__(ctx, household, member)
        self.birth = member.birth_date.toordinal()
        self.offset = household.place.utc_offset
        self.chronic: list[Chronic] = []
        self.chronic_ids: dict[str, str] = {}
        self.last_fill: dict[str, int] = {}
        self.sensitive: Sensitive | None = None
        self.sensitive_condition: str | None = None
        self.recorded_problems = False
        self.has_allergy = False
        self.pa_done = False
        self.physique = (1.0, 1.0)

    # -- plan

    def build(self) -> list[Resource]:
        start = max(self.ctx.today - self.ctx.window_days, self.member.coverage_start.toordinal())
        end = self.ctx.today
        if end <= start:
            return self.out
        self._profile()
        for day, kind in self._plan(start, end):
            self._visit(day, kind)
        self._immunizations(start, end)
        return self.out

    def _age(self, day: int) -> float:
        return (day - self.birth) / 365.25

    def _profile(self) -> None:
        r, age, gender = self.r, self._age(self.ctx.today), self.member.gender
        for chronic in CHRONIC:
            if age < chronic.min_age or chronic.sex not in (None, gender):
                continue
            if r() < min(chronic.cap, chronic.base + chronic.slope * (age - chronic.min_age)):
                self.chronic.append(chronic)
        self.physique = (0.93 + r() * 0.14, min(45.0, max(17.5, 27.0 + (r() - 0.5) * 14)))
        if age >= 18 and self.physique[1] >= 30 and r() < 0.6:
            self.chronic.append(Chronic(OBESITY, 18, 0, 0, 0, None, None, None, None))
        self.has_allergy = r() < 0.12
        if self.member.has_sensitive_care:
            fits = [
                s for s in SENSITIVE if s.min_age <= age <= s.max_age and s.sex in (None, gender)
            ]
            self.sensitive = fits[int(r() * len(fits))] if fits else None

    def _plan(self, start: int, end: int) -> list[tuple[int, str]]:
        r, visits = self.r, []
        year = start
        while year < end:
            span = min(365, end - year)
            share, age = span / 365, self._age(year)
            well_share = 0.8 if age < 18 else 0.6 if age < 65 else 0.75
            wellness = 3 if age < 2 else int(r() < well_share)
            counts = (
                ("wellness", round(wellness * share)),
                ("followup", int(min(len(self.chronic), 2) * share + r())),
                ("acute", int((1.0 if age < 12 else 0.6 if age < 65 else 0.8) * share + r())),
                ("er", int(r() < 0.06 * share)),
                ("sensitive", int(self.sensitive is not None and r() < 0.8 * share + 0.2)),
            )
            for kind, count in counts:
                visits += [(year + int(r() * span), kind) for _ in range(count)]
            year += span
        visits.sort()
        return visits

    # -- one visit

    def _visit(self, day: int, kind: str) -> None:
        r, age = self.r, self._age(day)
        org_index = self._org(kind, age)
        org = f"{self.ctx.abbr}-org-{org_index + 1:02d}"
        staff = ORG_PRACTITIONERS[org_index]
        practitioner = f"{self.ctx.abbr}-prac-{staff[int(r() * len(staff))] + 1:02d}"
        er = kind == "er"
        begin = int(r() * 1440) if er else 8 * 60 + int(r() * 36) * 15
        length = 120 + int(r() * 240) if er else 20 + int(r() * 4) * 10
        labels = self.sensitive.label if kind == "sensitive" and self.sensitive else None
        encounter = self._id("enc")
        when = stamp(day, begin, self.offset)
        type_key = "well_child" if kind == "wellness" and age < 18 else kind
        self._add(
            {
                "resourceType": "Encounter",
                "id": encounter,
                "status": "finished",
                "class": {
                    "system": ACT_CODE,
                    "code": "EMER" if er else "AMB",
                    "display": "emergency" if er else "ambulatory",
                },
                "type": [concept(SNOMED, ENCOUNTER_TYPE[type_key])],
                "subject": ref(self.patient),
                "participant": [{"individual": ref(f"Practitioner/{practitioner}")}],
                "period": {"start": when, "end": stamp(day, begin + length, self.offset)},
                "serviceProvider": ref(f"Organization/{org}"),
            },
            labels,
        )
        visit = Visit(day, when, encounter, org, practitioner)
        if kind != "sensitive" and not self.recorded_problems:
            self._record_problems(visit)
        if kind == "wellness":
            self._wellness(visit, age)
        elif kind == "followup":
            self._followup(visit)
        elif kind == "sensitive" and self.sensitive:
            self._sensitive_visit(visit, self.sensitive)
        else:
            self._problem_visit(visit, age, er)
        self._claim(visit, labels)
        for authorization, diagnosis in visit.authorizations:
            self._prior_authorization(visit, authorization, diagnosis)

    def _org(self, kind: str, age: float) -> int:
        if kind == "er":
            return HOSPITAL
        if kind == "sensitive" and self.sensitive:
            return self.sensitive.org
        if age < 18:
            return PEDIATRICS
        if kind == "acute" and self.r() < 0.4:
            return URGENT_CARE
        return self.household.clinic

    def _record_problems(self, visit: Visit) -> None:
        """Chronic conditions (onset before the window) and allergies enter at the first visit."""
        self.recorded_problems = True
        r = self.r
        for chronic in self.chronic:
            earliest = self.birth + chronic.min_age * 365
            onset = min(visit.day, max(earliest, visit.day - 365 - int(r() * 3000)))
            condition = self._condition(visit, chronic.code, onset, "problem-list-item")
            self.chronic_ids[chronic.code[0]] = condition
            visit.diagnoses.append(chronic.code)
        if self.has_allergy:
            code, category, reaction = ALLERGIES[int(r() * len(ALLERGIES))]
            self._add(
                {
                    "resourceType": "AllergyIntolerance",
                    "id": self._id("allergy"),
                    "clinicalStatus": hl7_concept("allergyintolerance-clinical", "active"),
                    "verificationStatus": hl7_concept(
                        "allergyintolerance-verification", "confirmed"
                    ),
                    "type": "allergy",
                    "category": [category],
                    "criticality": "high" if reaction[0] == "39579001" else "low",
                    "code": concept(SNOMED, code),
                    "patient": ref(self.patient),
                    "encounter": ref(f"Encounter/{visit.encounter}"),
                    "recordedDate": visit.when,
                    "reaction": [{"manifestation": [concept(SNOMED, reaction)]}],
                }
            )

    def _wellness(self, visit: Visit, age: float) -> None:
        r = self.r
        cpt = next(code for below, code in PREVENTIVE_CPT if age < below)
        visit.items.append(cpt)
        visit.diagnoses.append(
            ("Z00.129", "Encounter for routine child health examination without abnormal findings")
            if age < 18
            else (
                "Z00.00",
                "Encounter for general adult medical examination without abnormal findings",
            )
        )
        self._vital(visit, "weight", self._weight(age))
        if age < 18:
            self._vital(visit, "height", self._height(age))
        elif r() < 0.6:
            self._vital(visit, "bmi", self.physique[1] * (0.97 + r() * 0.06))
        if age >= 3:
            self._blood_pressure(visit)
        if age >= 40 and r() < 0.5:
            self._lab(visit, "cholesterol", any(c.lab == "cholesterol" for c in self.chronic))
            self._lab(visit, "glucose", any(c.lab == "a1c" for c in self.chronic))
            self._procedure(visit, CPT, VENIPUNCTURE)
        if age >= 12 and r() < 0.3:
            self._procedure(visit, SNOMED, DEPRESSION_SCREEN, bill=False)

    def _followup(self, visit: Visit) -> None:
        r = self.r
        visit.items.append(VISIT_CPT["followup"])
        self._blood_pressure(visit)
        if r() < 0.3:
            self._vital(visit, "weight", self._weight(self._age(visit.day)))
        drew_blood = False
        for chronic in self.chronic:
            visit.diagnoses.append(chronic.code)
            if chronic.lab and r() < 0.5:
                self._lab(visit, chronic.lab, True)
                drew_blood = True
            if chronic.medication:
                self._refill(visit, chronic.medication, self.chronic_ids.get(chronic.code[0]), None)
            if chronic.authorization and not self.pa_done and r() < 0.1:
                visit.authorizations.append((chronic.authorization, chronic.code))
                self.pa_done = True
        if drew_blood:
            self._procedure(visit, CPT, VENIPUNCTURE)

    def _problem_visit(self, visit: Visit, age: float, er: bool) -> None:
        r = self.r
        pool = [p for p in (EMERGENCIES if er else PROBLEMS) if p.min_age <= age <= p.max_age]
        problem = _weighted(r, pool)
        visit.items.append(VISIT_CPT["er" if er else "acute"])
        visit.diagnoses.append(problem.code)
        self._vital(visit, "temperature", 36.4 + r() * (2.6 if problem.code[0][0] in "JH" else 0.9))
        if er or r() < 0.3:
            self._vital(visit, "heart_rate", (95 if age < 12 else 62) + r() * 35)
        if er:
            self._blood_pressure(visit)
            self._vital(visit, "spo2", 94 + r() * 5)
        condition = self._condition(
            visit, problem.code, visit.day, "encounter-diagnosis", resolved_after=7 + int(r() * 21)
        )
        if problem.medication and r() < 0.7:
            self._medication(visit, problem.medication, condition, "completed", None)
        if problem.procedure:
            self._procedure(visit, CPT, problem.procedure)
        if problem.authorization and r() < 0.35:
            visit.authorizations.append((problem.authorization, problem.code))

    def _sensitive_visit(self, visit: Visit, sensitive: Sensitive) -> None:
        visit.items.append(VISIT_CPT["sensitive"])
        visit.diagnoses.append(sensitive.code)
        if self.sensitive_condition is None:
            self.sensitive_condition = self._condition(
                visit, sensitive.code, visit.day, "problem-list-item", labels=sensitive.label
            )
        self._refill(visit, sensitive.medication, self.sensitive_condition, sensitive.label)

    def _refill(
        self, visit: Visit, medication: Code, condition: str | None, labels: Code | None
    ) -> None:
        """Chronic prescriptions are renewed about once a year; the latest one stays active."""
        last = self.last_fill.get(medication[0])
        if last is not None and visit.day - last < 330:
            return
        self.last_fill[medication[0]] = visit.day
        status = "active" if self.ctx.today - visit.day < 330 else "completed"
        self._medication(visit, medication, condition, status, labels)

    # -- immunizations

    def _immunizations(self, start: int, end: int) -> None:
        r, age_now = self.r, self._age(end)
        first_year = date.fromordinal(start).year
        for year in range(first_year, date.fromordinal(end).year + 1):
            season = date(year, 9, 15).toordinal() + int(r() * 76)
            age = self._age(season)
            if start <= season < end and age >= 0.5:
                if r() < (0.55 if age < 18 else 0.4 if age < 65 else 0.7):
                    self._immunization(season, FLU)
                if r() < 0.15:
                    self._immunization(min(season + int(r() * 30), end - 1), COVID)
        for offset, vaccine in INFANT_SCHEDULE:
            day = self.birth + offset + (int(r() * 10) if offset else 0)
            if start <= day < end:
                self._immunization(day, vaccine)
        adolescent = self.birth + int(11.5 * 365.25) + int(r() * 200)
        if start <= adolescent < end and r() < 0.8:
            for vaccine in ADOLESCENT:
                self._immunization(adolescent, vaccine)
        if age_now >= 65:
            for vaccine in SENIOR:
                if r() < 0.25:
                    self._immunization(start + int(r() * (end - start)), vaccine)

    # -- measurements

    def _blood_pressure(self, visit: Visit) -> None:
        r = self.r
        high = any(c.code[0] == "I10" for c in self.chronic) * 18
        systolic, diastolic = 104 + high + int(r() * 30), 64 + high // 2 + int(r() * 20)
        components = [
            {
                "code": concept(LOINC, ("8480-6", "Systolic blood pressure")),
                "valueQuantity": {
                    "value": systolic,
                    "unit": "mm[Hg]",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            },
            {
                "code": concept(LOINC, ("8462-4", "Diastolic blood pressure")),
                "valueQuantity": {
                    "value": diastolic,
                    "unit": "mm[Hg]",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            },
        ]
        code = ("85354-9", "Blood pressure panel with all children optional")
        self._observation(visit, "vital-signs", code, {"component": components})

    def _height(self, age: float) -> float:
        adult = 176.0 if self.member.gender == "male" else 162.0
        grown = 50 + 25 * age if age < 2 else 87 + 6.2 * (age - 2)
        return min(grown, adult) * self.physique[0]

    def _weight(self, age: float) -> float:
        if age < 18:
            if age < 2:
                grown = 3.4 + 6.5 * age if age < 1 else 9.9 + 2.5 * (age - 1)
            else:
                grown = 12.4 + 3.0 * (age - 2)
            return grown * self.physique[0] * (0.98 + self.r() * 0.04)
        metres = self._height(30) / 100
        return self.physique[1] * metres * metres * (0.98 + self.r() * 0.04)


def _weighted(r: Draw, problems: list[Problem]) -> Problem:
    roll = r() * sum(problem.weight for problem in problems)
    for problem in problems:
        roll -= problem.weight
        if roll < 0:
            return problem
    return problems[-1]
