"""Households and the people in them: ages, names, twins, addresses, phones, member ids.

A household is a subscriber, often a spouse, and up to four children (twins, at the
context's ``HouseholdMix.twin_share`` of births, share a birth date and surname but never a
first name, nor two that matching takes for one; some fathers name their eldest son after
themselves, Jr and Sr, at its ``junior_share``). Household ``index`` of a payer is rebuilt
from its own seed alone, so a stream of households and a single rebuilt household always
agree. The sandbox and the identity benchmark both draw their members here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from functools import cache

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge_tools.population.mix import HouseholdMix
from payerbridge_tools.population.network import Draw, PayerContext, derive_seed
from payerbridge_tools.population.shapes import Code
from payerbridge_tools.population.vocabulary import (
    ADULT_AGE_BANDS,
    COMMERCIAL_PLANS,
    EMPLOYERS,
    FEMALE_NAMES,
    MALE_NAMES,
    PLACES,
    STREET_SUFFIXES,
    STREETS,
    SURNAMES,
    Place,
)

MAX_HOUSEHOLD = 6  # subscriber + spouse + four children


@dataclass(frozen=True, slots=True)
class Member:
    """One covered person, as the payer enrolled them."""

    pos: int
    relationship: str
    given: tuple[str, ...]
    family: str
    gender: str
    birth_date: date
    phone: str
    phone_use: str
    has_sensitive_care: bool
    patient_id: str
    member_id: str
    umb: str
    coverage_start: date
    suffix: str = ""  # "Jr" or "Sr"


@dataclass(frozen=True, slots=True)
class Home:
    """Where a household lives: street lines, city, ZIP code and the landline."""

    lines: tuple[str, ...]
    place: Place
    postal_code: str
    phone: str


@dataclass(frozen=True, slots=True)
class Household:
    """One subscriber's household: address, plan, clinic and members in dependent order."""

    index: int
    lines: tuple[str, ...]
    place: Place
    postal_code: str  # the place's own, or another of its city's (HouseholdMix.zips_per_place)
    subscriber_id: str
    group: Code
    plan: Code
    is_medicare: bool
    clinic: int
    members: tuple[Member, ...]


@dataclass(slots=True)
class _Person:
    relationship: str
    gender: str
    birth: int  # ordinal
    family: str
    given: tuple[str, ...] = ()
    suffix: str = ""


def stream_households(ctx: PayerContext, members: int) -> Iterator[Household]:
    """Households in file order; the last one is cut short to give exactly ``members``."""
    index, remaining = 0, members
    while remaining > 0:
        household = build_household(ctx, index)
        if len(household.members) > remaining:
            household = replace(household, members=household.members[:remaining])
        remaining -= len(household.members)
        index += 1
        yield household


def build_household(ctx: PayerContext, index: int) -> Household:
    """Household ``index`` of this payer, rebuilt from its own seed alone."""
    r = random.Random(derive_seed(ctx.seed, "household", index)).random
    home = draw_home(ctx, r)
    people = _people(ctx.today, ctx.mix.twin_share, r)
    for person in people:
        person.given = _given_names(r, person.gender, person.relationship == "child")
    _rename_twins(r, people)
    if ctx.mix.junior_share:
        _name_a_junior(r, people, ctx.mix.junior_share)
    start = _household_coverage_start(ctx.as_of, r)
    members = tuple(
        _member(ctx, index, pos, person, home, start, r) for pos, person in enumerate(people)
    )
    prefix = ctx.payer.member_id_prefix
    is_medicare = (ctx.today - people[0].birth) >= 65 * 365.25
    if is_medicare:
        group = (f"{prefix}-MA{int(r() * 5) + 1:02d}", "Medicare Advantage")
        plan = ("MA-PPO", "Medicare Advantage PPO")
    else:
        employer = int(r() * len(EMPLOYERS))
        group = (f"{prefix}-{1001 + employer}", EMPLOYERS[employer])
        plan = COMMERCIAL_PLANS[int(r() * len(COMMERCIAL_PLANS))]
    return Household(
        index=index,
        lines=home.lines,
        place=home.place,
        postal_code=home.postal_code,
        subscriber_id=members[0].member_id,
        group=group,
        plan=plan,
        is_medicare=is_medicare,
        clinic=int(r() * 3),
        members=members,
    )


def draw_home(ctx: PayerContext, r: Draw) -> Home:
    """A home in one of the places: street lines, its ZIP code (one of the city's, as the
    context's mix spreads them) and a landline in its area code."""
    place = PLACES[int(r() * len(PLACES))]
    postal_code = place.postal_code
    if ctx.mix.zips_per_place > 1:
        postal_code = f"{int(place.postal_code) + 7 * int(r() * ctx.mix.zips_per_place):05d}"
    lines = _street_lines(r)
    return Home(lines, place, postal_code, _phone(place.area_code, ctx.mix, r))


def _people(today: int, twin_share: float, r: Draw) -> list[_Person]:
    family = _surname(r)
    age = _adult_age(r)
    gender = "female" if r() < 0.52 else "male"
    people = [_Person("self", gender, _birth(today, age, r), family)]
    youngest = age
    if r() < (0.3 if age < 25 else 0.62 if age < 75 else 0.45):
        spouse_age = min(95, max(18, age + int((r() - 0.5) * 12)))
        youngest = min(youngest, spouse_age)
        other = "male" if gender == "female" else "female"
        spouse_gender = other if r() < 0.95 else gender
        roll = r()
        if roll < 0.80:
            spouse_family = family
        elif roll < 0.92:
            spouse_family = _surname(r)
        else:
            spouse_family = f"{_surname(r)}-{family}"
        people.append(_Person("spouse", spouse_gender, _birth(today, spouse_age, r), spouse_family))
    people.extend(_children(today, youngest, family, twin_share, r))
    return people


def _children(
    today: int, parent_age: int, family: str, twin_share: float, r: Draw
) -> list[_Person]:
    wanted = _children_count(parent_age, r)
    oldest = min(25, parent_age - 18)
    children: list[_Person] = []
    while len(children) < wanted:
        birth = _birth(today, int(r() * (oldest + 1)), r)
        gender = "female" if r() < 0.49 else "male"
        children.append(_Person("child", gender, birth, family))
        if len(children) < 4 and r() < twin_share:
            other = "male" if gender == "female" else "female"
            children.append(_Person("child", gender if r() < 0.65 else other, birth, family))
    children.sort(key=lambda child: child.birth)
    return children


def _children_count(parent_age: int, r: Draw) -> int:
    if parent_age < 20:
        return 0
    if parent_age < 25:
        weights: tuple[float, ...] = (0.75, 0.18, 0.07)
    elif parent_age <= 50:
        weights = (0.36, 0.2, 0.25, 0.13, 0.06)
    elif parent_age <= 60:
        weights = (0.65, 0.2, 0.1, 0.04, 0.01)
    else:
        weights = (0.96, 0.04)
    roll = r()
    for count, weight in enumerate(weights):
        roll -= weight
        if roll < 0:
            return count
    return 0


def _rename_twins(r: Draw, people: list[_Person]) -> None:
    """Twins share birth date and surname, never a first name (nor two that matching takes
    for one, such as a nickname's); some share an initial."""
    for first, second in zip(people, people[1:], strict=False):
        if second.relationship != "child" or first.relationship != "child":
            continue
        if first.birth != second.birth:
            continue
        names = FEMALE_NAMES if second.gender == "female" else MALE_NAMES
        if r() < 0.3:
            names = tuple(name for name in names if name[0] == first.given[0][0]) or names
        for _ in range(16):
            candidate = names[int(r() * len(names))]
            if not _is_one_name(candidate, first.given) and candidate not in second.given[1:]:
                second.given = (candidate, *second.given[1:])
                break


def _name_a_junior(r: Draw, people: list[_Person], share: float) -> None:
    """The subscriber, a father, names his eldest son after himself: Jr, and Sr on him.
    Not when someone else in the household goes by that first name already."""
    father = people[0]
    sons = [p for p in people if p.relationship == "child" and p.gender == "male"]
    if father.gender != "male" or not sons or r() >= share:
        return
    son = sons[0]  # children are in birth order
    others = [p.given[0] for p in people if p is not father and p is not son]
    if any(_is_one_name(name, father.given[:1]) for name in others):
        return
    son.given, son.suffix, father.suffix = father.given, "Jr", "Sr"


@cache
def _name_roots(name: str) -> frozenset[str]:
    return frozenset(standard_record(Demographics(given=[name])).first_name_roots)


def _is_one_name(candidate: str, names: tuple[str, ...]) -> bool:
    """Whether matching would take ``candidate`` for one of ``names`` (the same name, an
    accent apart, or a nickname of it)."""
    roots = _name_roots(candidate)
    return any(name == candidate or roots & _name_roots(name) for name in names)


def _member(
    ctx: PayerContext,
    index: int,
    pos: int,
    person: _Person,
    home: Home,
    household_start: date,
    r: Draw,
) -> Member:
    age = (ctx.today - person.birth) / 365.25
    phone, use = home.phone, "home"
    if (person.relationship == "spouse" and r() < 0.5) or (pos > 1 and age >= 14 and r() < 0.6):
        phone, use = _phone(home.place.area_code, ctx.mix, r), "mobile"
    number = index * 8 + pos
    member_no = (number * 738_219_461 + 104_729_357 + ctx.payer_index * 7919) % 10**9
    umb_no = (number * 521_830_497 + 7_771_113) % 10**9
    birth_date = date.fromordinal(person.birth)
    return Member(
        pos=pos,
        relationship=person.relationship,
        given=person.given,
        family=person.family,
        gender=person.gender,
        birth_date=birth_date,
        phone=phone,
        phone_use=use,
        has_sensitive_care=age >= 12 and r() < 0.035,
        patient_id=f"{ctx.abbr}-pat-{index:07d}-{pos}",
        member_id=f"{ctx.payer.member_id_prefix}{member_no:09d}",
        umb=f"U{umb_no:09d}",
        coverage_start=max(household_start, birth_date),
        suffix=person.suffix,
    )


def _skewed(r: Draw, names: tuple[str, ...]) -> str:
    """A name from a common-first list, the front favoured: the first of n names is drawn
    with probability 1/sqrt(n) (James or Mary about 3% of people, as over the generations)."""
    roll = r()
    return names[int(roll * roll * len(names))]


def _surname(r: Draw) -> str:
    """A surname, the front less favoured than given names: the first of n with probability
    n ** (-1/1.3) (Smith about 1.5% of people; the census has 0.8%)."""
    return SURNAMES[int(len(SURNAMES) * r() ** 1.3)]


def _given_names(r: Draw, gender: str, is_child: bool) -> tuple[str, ...]:
    names = FEMALE_NAMES if gender == "female" else MALE_NAMES
    first = _skewed(r, names)
    if r() < (0.6 if is_child else 0.4):
        middle = names[int(r() * len(names))]
        if middle != first:
            return (first, middle)
    return (first,)


def _adult_age(r: Draw) -> int:
    roll = r()
    for low, high, share in ADULT_AGE_BANDS:
        if roll < share:
            return low + int(r() * (high - low + 1))
        roll -= share
    return 65 + int(r() ** 1.5 * 26)  # 65..90, fewer at the top


def _birth(today: int, age: int, r: Draw) -> int:
    return today - int(age * 365.2425) - int(r() * 365)


def _street_lines(r: Draw) -> tuple[str, ...]:
    number = 1 + int(r() ** 1.6 * 9899)
    direction = "NSEW"[int(r() * 4)] + " " if r() < 0.12 else ""
    street = STREETS[int(r() * len(STREETS))]
    suffix = STREET_SUFFIXES[int(r() * len(STREET_SUFFIXES))]
    first = f"{number} {direction}{street} {suffix}"
    if r() >= 0.22:
        return (first,)
    style = r()
    if style < 0.5:
        unit = f"Apt {1 + int(r() * 12)}{'ABCDEF'[int(r() * 6)]}"
    elif style < 0.8:
        unit = f"Apt {100 * (1 + int(r() * 6)) + 1 + int(r() * 20)}"
    else:
        unit = f"Unit {1 + int(r() * 40)}"
    return (first, unit)


def _phone(area_code: str, mix: HouseholdMix, r: Draw) -> str:
    if mix.has_fictional_phones:
        return f"{area_code}-555-{int(r() * 10000):04d}"
    number = 2_000_000 + int(r() * 8_000_000)  # exchanges 200-999
    return f"{area_code}-{number // 10000:03d}-{number % 10000:04d}"


def _household_coverage_start(as_of: date, r: Draw) -> date:
    months = as_of.year * 12 + as_of.month - 1 - (3 + int(r() ** 1.3 * 140))
    return date(months // 12, months % 12 + 1, 1)
