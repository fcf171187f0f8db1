"""A third payer-migration population for ``bench identity``: households drawn from
census-style family structures.

The first generator (``identity_data``) and the second (``identity_migration``) each
invent their households. This one takes its household structure from published
statistics of US households and children's living arrangements (the shares below, with
their tables in ``SOURCES``), and its names, places, identifiers and corruption of
requests from the second generator's model, imported from ``identity_migration`` and
kept apart from the engine's code. It was written without reading the engine's rules.

Households (one census household, then who of it the old plan enrolled)
    living alone; married couples without children under 18 (some with an adult child of
    18-25 still on the plan); married couples with children under 18, of them some
    cohabiting (the partner cannot be enrolled as a spouse) and some blended (the spouse's
    children from an earlier relationship carry another surname: stepchildren); lone
    mothers and lone fathers with children, or with an adult child; grandparents raising
    grandchildren; unrelated adults sharing a dwelling (each their own subscriber, at the
    same address); and, in some family households, a grandparent living with them.
    Children are spaced by birth intervals of one to a dozen years, and a delivery is a
    twin delivery at the US rate. Not everyone is enrolled: children covered elsewhere,
    stepchildren on their other parent's plan, cohabiting partners, most grandparents (on
    Medicare) and spouses with their own employer's plan are the household's *relatives
    who never enrolled*, who live at the member's address and share its surname, phone
    and cards.

Identifiers families share
    A dependent child's record holds their own SSN, none, the subscriber's, the other
    parent's or an older sibling's (``CHILD_RECORD_SSN``): a plan's data shows children
    enrolled under a parent's or a sibling's number. A never-enrolled child's request
    may carry a parent's or a sibling's SSN too (``RELATIVE_REQUEST_SSN``), as the new
    plan enrolled them under it.

Requests
    About members: the second generator's corruption model (moves, card data, names,
    dates, omissions; ``_Requests.about_member``), with labels added for what the
    household is and whose SSN the record holds. Non-members: half relatives who never
    enrolled (drawn from the census households themselves, not made up per request),
    half people of census households the plan never had. Every request carries labels
    (``LABELS``) for recall by what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from random import Random
from typing import Any

from payerbridge_tools.bench import identity_migration as corruption
from payerbridge_tools.bench.identity_migration import (
    OLDEST_GRANDPARENT_YEAR,
    REFERENCE_YEAR,
    RELATIVE_CARD_SHARES,
    _adult,
    _adult_year,
    _birth_in,
    _Builder,
    _Culture,
    _enroll,
    _given_names,
    _Household,
    _marry,
    _other_sex,
    _Person,
    _randint,
    _random_sex,
    _recorded_family,
    _Requests,
    _weighted_choice,
)
from payerbridge_tools.bench.identity_types import LinkageSet

__all__ = ["HOUSEHOLD_TYPES", "LABELS", "SOURCES", "generate_census_set"]

# -- census-style shares (data) --------------------------------------------------------------

HOUSEHOLD_TYPES: tuple[tuple[str, float], ...] = (
    ("alone", 0.280),
    ("couple", 0.276),  # married, no own children under 18
    ("couple_children", 0.205),  # married, own children under 18
    ("mother_family", 0.125),  # female householder, no spouse present
    ("father_family", 0.049),  # male householder, no spouse present
    ("roommates", 0.064),  # unrelated people living together
)
# Of families with own children under 18, by how many (three or more split by us).
CHILDREN_UNDER_18: tuple[tuple[int, float], ...] = (
    (1, 0.419),
    (2, 0.380),
    (3, 0.140),
    (4, 0.045),
    (5, 0.016),
)
# Lone-parent families with own children under 18 (the others hold an adult child).
LONE_MOTHER_WITH_CHILDREN = 0.61
LONE_FATHER_WITH_CHILDREN = 0.40
# Of two-parent households with children: not the children's two biological parents.
BLENDED_RATE = 0.13
# Of two-parent households with children: the parents cohabit, not married (5% of 70%).
COHABITING_RATE = 0.07
# Households of grandparents raising grandchildren with neither parent (4% of children
# live with neither parent; about half of them with a grandparent): of all households,
# drawn from the lone-householder families.
GRANDPARENT_FAMILY_RATE = 0.013
# Multigenerational households (a grandparent living with the family): of all households.
MULTIGENERATIONAL_RATE = 0.044
# A delivery of twins: 33.3 of every 1,000 babies are twins.
TWIN_DELIVERY_RATE = 33.3 / (2000 - 33.3)
# Years between one child's birth and the next (close spacing dominates).
BIRTH_GAP_YEARS: tuple[tuple[int, float], ...] = (
    (1, 0.20),
    (2, 0.30),
    (3, 0.22),
    (4, 0.12),
    (6, 0.12),
    (10, 0.04),
)
ADULT_CHILD_OF_COUPLE_RATE = 0.15  # a couple without young children, with one of 18-25

SOURCES: dict[str, str] = {
    "HOUSEHOLD_TYPES": (
        "US Census Bureau, CPS ASEC 2015, households by type (America's Families and "
        "Living Arrangements, table HH-1; the 2015 distribution as published with Income "
        "and Poverty in the United States: 2014): alone 28.0%, married without children "
        "under 18 27.6%, married with 20.5%, female-headed families 12.5%, male-headed "
        "4.9%, unrelated people 6.4%"
    ),
    "CHILDREN_UNDER_18": (
        "US Census Bureau, Statistical Abstract, No. 65 Families by Number of Own Children "
        "Under 18 Years Old (CPS, 1990): of 32.3 million families with children, one 13.5, "
        "two 12.3, three or more 6.5 million; the split of three or more is ours"
    ),
    "LONE_MOTHER_WITH_CHILDREN": (
        "the same table, female householder families 1990: 39% without own children "
        "under 18 (male householder: 60%)"
    ),
    "BLENDED_RATE": (
        "US Census Bureau, Living Arrangements of Children: 2004 (P70-114, SIPP): 87% of "
        "children living with two parents lived with their biological mother and father"
    ),
    "COHABITING_RATE": (
        "childstats.gov, America's Children, indicator FAM1.A (CPS ASEC 2022): 65% of "
        "children with two married parents, 5% with two cohabiting parents"
    ),
    "GRANDPARENT_FAMILY_RATE": (
        "the same indicator: 4% of children live with neither parent; the share of them "
        "with a grandparent (about half) and its conversion to households are ours"
    ),
    "MULTIGENERATIONAL_RATE": (
        "US Census Bureau, 2010 Census Brief Households and Families: 2010 (C2010BR-14): "
        "multigenerational households 4.4% of all households"
    ),
    "TWIN_DELIVERY_RATE": (
        "NCHS Data Brief No. 80, Three Decades of Twin Births in the United States, "
        "1980-2009: 33.3 twins per 1,000 births in 2009"
    ),
    "BIRTH_GAP_YEARS": "ours: close spacing of two to three years most common",
    "ADULT_CHILD_OF_COUPLE_RATE": "ours",
}
"""Where each share above comes from (the values are rounded from the tables named)."""

# -- the old plan's enrollment (plan data, not census: our assumptions) ---------------------

CHILD_ENROLLED_RATE = 0.93  # the others are covered elsewhere
STEPCHILD_ENROLLED_RATE = 0.6  # the others are on their other parent's plan
ADULT_CHILD_ENROLLED_RATE = 0.7
SPOUSE_ENROLLED_RATE = 0.88  # the others have their own employer's plan
GRANDPARENT_ENROLLED_RATE = 0.15  # most are on Medicare
CHILD_RECORD_SSN: tuple[tuple[str, float], ...] = (  # whose SSN a dependent child's record holds
    ("own", 0.55),
    ("none", 0.20),
    ("subscriber", 0.15),
    ("other_parent", 0.05),
    ("sibling", 0.05),
)
RELATIVE_REQUEST_SSN: tuple[tuple[str, float], ...] = (  # a never-enrolled child's request
    ("own", 0.45),
    ("none", 0.25),
    ("parent", 0.20),
    ("sibling", 0.10),
)
RELATIVE_SHARE_OF_NON_MEMBERS = 0.5

RELATIVE_KINDS = (
    "child",
    "twin",
    "stepchild",
    "adult_child",
    "spouse",
    "partner",
    "grandparent",
)
HOUSEHOLD_LABELS = tuple(f"household:{kind}" for kind, _ in HOUSEHOLD_TYPES) + (
    "household:grandparent_family",
    "household:blended",
    "household:cohabiting",
    "household:multigenerational",
)
LABELS: tuple[str, ...] = (
    *corruption.LABELS,
    *(f"census_relative:{kind}" for kind in RELATIVE_KINDS),
    *HOUSEHOLD_LABELS,
    "twin",
    *(f"record_ssn:{source}" for source, _ in CHILD_RECORD_SSN if source != "own"),
    *(f"request_ssn:{source}" for source, _ in RELATIVE_REQUEST_SSN if source != "own"),
)
"""Every label ``request_labels`` can hold."""


@dataclass
class _Resident:
    """A person of a census household: their role in it, and whether the plan enrolled
    them (and if so, their index among the household's members)."""

    person: _Person
    kind: str  # subscriber, spouse, partner, child, stepchild, adult_child, grandparent
    enrolled: bool
    twin: bool = False


@dataclass
class _Home:
    """A census household: its people, its kinds (labels), and its plan household."""

    residents: list[_Resident]
    labels: tuple[str, ...]
    household: _Household | None = None


# -- building households ---------------------------------------------------------------------


def _share(kinds: Sequence[str]) -> float:
    return sum(share for kind, share in HOUSEHOLD_TYPES if kind in kinds)


def _deliveries(rng: Random, count: int, oldest: int, youngest: int) -> list[tuple[int, int, int]]:
    """The birth dates of ``count`` deliveries (fewer if they do not fit), oldest first,
    born in the years [oldest, youngest], spaced by ``BIRTH_GAP_YEARS``."""
    gaps = [_weighted_choice(rng, BIRTH_GAP_YEARS) for _ in range(count - 1)]
    start = _randint(rng, oldest, max(oldest, youngest - sum(gaps)))
    years = list(accumulate([start, *gaps]))
    return [_birth_in(rng, year) for year in years if year <= youngest]


def _children(
    rng: Random,
    culture: _Culture,
    parents: Sequence[_Person],
    count: int,
    *,
    surname: str,
    maternal: str | None,
    ages: tuple[int, int],
    kind: str,
) -> list[_Resident]:
    """``count`` deliveries' children (a twin delivery gives two) of ``parents``, aged
    ``ages`` (lowest, highest)."""
    parent_years = [p.birth[0] for p in parents]
    oldest = max(REFERENCE_YEAR - ages[1], max(parent_years) + 18)
    youngest = min(REFERENCE_YEAR - ages[0], min(parent_years) + 45)
    if oldest > youngest:
        return []
    taken = {p.given[0] for p in parents}
    residents: list[_Resident] = []
    for birth in _deliveries(rng, count, oldest, youngest):
        twins = rng.random() < TWIN_DELIVERY_RATE
        sex = _random_sex(rng)
        for twin_index in range(2 if twins else 1):
            if twin_index and rng.random() >= corruption.TWINS_SAME_SEX_RATE:
                sex = _random_sex(rng)
            given = _given_names(rng, culture, sex, child=True, avoid=taken)
            taken.add(given[0])
            person = _Person(
                given=given,
                family=_recorded_family(rng, culture, surname, maternal),
                birth_surname=surname,
                maternal=maternal,
                sex=sex,
                birth=birth,
                role="child",
            )
            residents.append(_Resident(person, kind, False, twins))
    return residents


def _couple(rng: Random, culture: _Culture, subscriber: _Person, *, married: bool) -> _Person:
    same_sex = rng.random() < corruption.SAME_SEX_COUPLE_RATE
    sex = subscriber.sex if same_sex else _other_sex(subscriber.sex)
    year = subscriber.birth[0] + round(rng.gauss(0, 3))
    year = min(max(year, corruption.OLDEST_ADULT_YEAR), corruption.YOUNGEST_ADULT_YEAR)
    spouse = _adult(rng, culture, sex, year, "spouse")
    if married and not same_sex:
        wife, husband = (subscriber, spouse) if subscriber.sex == "female" else (spouse, subscriber)
        _marry(rng, culture, wife, husband)
    return spouse


def _parent_surnames(
    culture: _Culture, father: _Person, mother: _Person | None
) -> tuple[str, str | None]:
    maternal = mother.birth_surname if mother is not None and culture.double_surname_rate else None
    return father.birth_surname, maternal


def _family(rng: Random, culture: _Culture, kind: str) -> tuple[list[_Resident], list[str]]:
    """One census household's residents, householder first, and its labels."""
    labels = [f"household:{kind}"]
    lone = _share(("mother_family", "father_family"))
    if kind in ("mother_family", "father_family") and rng.random() < GRANDPARENT_FAMILY_RATE / lone:
        return _grandparent_family(rng, culture), ["household:grandparent_family"]
    sex = {"mother_family": "female", "father_family": "male"}.get(kind, _random_sex(rng))
    subscriber = _adult(rng, culture, sex, _adult_year(rng), "subscriber")
    residents = [_Resident(subscriber, "subscriber", True)]
    if kind in ("couple", "couple_children"):
        cohabiting = kind == "couple_children" and rng.random() < COHABITING_RATE
        partner = _couple(rng, culture, subscriber, married=not cohabiting)
        enrolled = not cohabiting and rng.random() < SPOUSE_ENROLLED_RATE
        residents.append(_Resident(partner, "partner" if cohabiting else "spouse", enrolled))
        if cohabiting:
            labels.append("household:cohabiting")
        father = subscriber if subscriber.sex == "male" else partner
        mother = partner if father is subscriber else subscriber
        surname, maternal = _parent_surnames(culture, father, mother)
        if kind == "couple_children":
            residents += _couple_children(
                rng, culture, subscriber, partner, surname, maternal, labels
            )
        elif rng.random() < ADULT_CHILD_OF_COUPLE_RATE:
            residents += _children(
                rng,
                culture,
                [subscriber, partner],
                1,
                surname=surname,
                maternal=maternal,
                ages=(18, 25),
                kind="adult_child",
            )
    elif kind in ("mother_family", "father_family"):
        with_young = rng.random() < (
            LONE_MOTHER_WITH_CHILDREN if sex == "female" else LONE_FATHER_WITH_CHILDREN
        )
        # A lone mother's children carry the father's surname about as often as hers.
        surname = (
            subscriber.birth_surname
            if sex == "male" or rng.random() < 0.5
            else (culture.surnames.pick(rng))
        )
        count = _weighted_choice(rng, CHILDREN_UNDER_18) if with_young else 1
        residents += _children(
            rng,
            culture,
            [subscriber],
            count,
            surname=surname,
            maternal=None,
            ages=(0, 17) if with_young else (18, 25),
            kind="child" if with_young else "adult_child",
        )
    families = 1 - _share(("alone", "roommates"))
    if kind != "alone" and rng.random() < MULTIGENERATIONAL_RATE / families:
        residents.append(_Resident(_grandparent(rng, culture, subscriber), "grandparent", False))
        labels.append("household:multigenerational")
    return residents, labels


def _couple_children(
    rng: Random,
    culture: _Culture,
    subscriber: _Person,
    partner: _Person,
    surname: str,
    maternal: str | None,
    labels: list[str],
) -> list[_Resident]:
    count = _weighted_choice(rng, CHILDREN_UNDER_18)
    if rng.random() >= BLENDED_RATE:
        return _children(
            rng,
            culture,
            [subscriber, partner],
            count,
            surname=surname,
            maternal=maternal,
            ages=(0, 17),
            kind="child",
        )
    labels.append("household:blended")
    # The partner's children of an earlier relationship: another father's surname.
    earlier = max(1, count - _randint(rng, 0, count - 1)) if count > 1 else 1
    other = culture.surnames.pick(rng)
    step = _children(
        rng,
        culture,
        [partner],
        earlier,
        surname=other,
        maternal=None,
        ages=(5, 17),
        kind="stepchild",
    )
    joint = (
        _children(
            rng,
            culture,
            [subscriber, partner],
            count - earlier,
            surname=surname,
            maternal=maternal,
            ages=(0, 8),
            kind="child",
        )
        if count > earlier
        else []
    )
    return step + joint


def _grandparent(rng: Random, culture: _Culture, subscriber: _Person) -> _Person:
    sex = _random_sex(rng)
    year = max(subscriber.birth[0] - _randint(rng, 20, 38), OLDEST_GRANDPARENT_YEAR)
    parent = _adult(rng, culture, sex, year, "parent")
    if sex == "male" or rng.random() < 0.6:
        parent.family = subscriber.birth_surname
        parent.birth_surname = subscriber.birth_surname
    return parent


def _grandparent_family(rng: Random, culture: _Culture) -> list[_Resident]:
    """A grandparent (and spouse) raising grandchildren, who carry the grandparent's
    surname (a son's children) or another (a daughter's)."""
    subscriber = _adult(rng, culture, _random_sex(rng), _randint(rng, 1950, 1978), "subscriber")
    residents = [_Resident(subscriber, "subscriber", True)]
    if rng.random() < 0.5:
        spouse = _couple(rng, culture, subscriber, married=True)
        residents.append(_Resident(spouse, "spouse", rng.random() < SPOUSE_ENROLLED_RATE))
    surname = subscriber.birth_surname if rng.random() < 0.6 else culture.surnames.pick(rng)
    # The grandchildren's parent is a generation younger than the grandparent.
    parent_year = min(subscriber.birth[0] + _randint(rng, 20, 32), REFERENCE_YEAR - 18)
    stand_in = replace(subscriber, birth=(parent_year, 1, 1))
    residents += _children(
        rng,
        culture,
        [stand_in],
        _weighted_choice(rng, CHILDREN_UNDER_18),
        surname=surname,
        maternal=None,
        ages=(0, 17),
        kind="child",
    )
    return residents


def _roommates(rng: Random, builder: _Builder) -> list[_Resident]:
    """Unrelated adults, each of their own culture and surname."""
    return [
        _Resident(
            _adult(
                rng, builder.culture(), _random_sex(rng), _randint(rng, 1975, 2003), "subscriber"
            ),
            "subscriber",
            True,
        )
        for _ in range(_randint(rng, 2, 3))
    ]


_CHILD_KINDS = frozenset({"child", "stepchild", "adult_child"})
_ENROLLED_RATE = {
    "child": CHILD_ENROLLED_RATE,
    "stepchild": STEPCHILD_ENROLLED_RATE,
    "adult_child": ADULT_CHILD_ENROLLED_RATE,
    "grandparent": GRANDPARENT_ENROLLED_RATE,
}


class _Census:
    """Census households, the plan households enrolled from them, and their records."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.builder = _Builder(rng)

    def _dwelling(self, number: int, culture: _Culture, people: list[_Person]) -> _Household:
        geo = self.builder.geo
        region = geo.region(culture.group)
        lines, postal_code = geo.address(region)
        return _Household(number, culture, region, lines, postal_code, geo.phone(region), people)

    def homes(self, number: int) -> list[_Home]:
        """One census household as the plan households it makes (several for unrelated
        adults sharing a dwelling, each their own subscriber); numbered from ``number``."""
        rng = self.rng
        kind = _weighted_choice(rng, HOUSEHOLD_TYPES)
        if kind == "roommates":
            residents = _roommates(rng, self.builder)
            first = self._dwelling(number, self.builder.culture(), [])
            homes = []
            for offset, resident in enumerate(residents):
                household = replace(
                    first,
                    number=number + offset,
                    phone=self.builder.geo.phone(first.region),
                    people=[resident.person],
                )
                self.builder.equip(resident.person, household)
                homes.append(_Home([resident], ("household:roommates",), household))
            return homes
        culture = self.builder.culture()
        residents, labels = _family(rng, culture, kind)
        for resident in residents:
            rate = _ENROLLED_RATE.get(resident.kind)
            if rate is not None:
                resident.enrolled = rng.random() < rate
        household = self._dwelling(number, culture, [r.person for r in residents if r.enrolled])
        for resident in residents:
            self.builder.equip(resident.person, household)
        return [_Home(residents, tuple(labels), household)]

    def enroll(self, home: _Home, room: int) -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
        """The plan's records of ``home``'s first ``room`` enrolled residents, and each
        record's labels (what the household is, whose SSN the record holds)."""
        household = home.household
        assert household is not None
        enrolled = [r for r in home.residents if r.enrolled][:room]
        household.people = [r.person for r in enrolled]
        records = _enroll(self.rng, household, self.builder.ids)
        labels = []
        for resident, record in zip(enrolled, records, strict=True):
            extra = list(home.labels)
            if resident.twin:
                extra.append("twin")
            if resident.kind in _CHILD_KINDS:
                source = self._record_ssn(record, resident, enrolled)
                if source is not None:
                    extra.append(f"record_ssn:{source}")
            labels.append(tuple(extra))
        return records, labels

    def _record_ssn(
        self, record: dict[str, Any], child: _Resident, enrolled: Sequence[_Resident]
    ) -> str | None:
        """Whose SSN a dependent child's record holds; the source when not the child's own."""
        source = _weighted_choice(self.rng, CHILD_RECORD_SSN)
        subscriber = enrolled[0].person
        other_parent = next((r.person for r in enrolled if r.kind == "spouse"), None)
        older = [
            r.person
            for r in enrolled
            if r.kind in _CHILD_KINDS and r.person.ssn and r.person.birth < child.person.birth
        ]
        taken: str | None = None
        if source == "subscriber":
            taken = subscriber.ssn
        elif source == "other_parent" and other_parent is not None:
            taken = other_parent.ssn
        elif source == "sibling" and older:
            taken = older[-1].ssn
        if source == "none":
            record.pop("ssn", None)
            record.pop("ssn_carried", None)
            return source
        if taken is None:
            return None  # as _enroll recorded it
        record["ssn"] = taken
        # The plan can tell only a subscriber's number on a dependent's record.
        record["ssn_carried"] = taken == subscriber.ssn
        return source


def generate_census_set(
    members: int,
    *,
    seed: int = 11,
    requests: int | None = None,
    non_member_share: float = 0.1,
) -> LinkageSet:
    """A plan's ``members`` from census-style households, and ``requests`` (default: as
    many) member-match requests about them, their never-enrolled relatives and strangers."""
    if members < 1:
        raise ValueError("members must be at least 1")
    if not 0.0 <= non_member_share <= 1.0:
        raise ValueError("non_member_share must be between 0 and 1")
    request_count = members if requests is None else requests
    if request_count < 0:
        raise ValueError("requests must not be negative")
    with corruption._collector_paused():
        return _generate(members, Random(seed), request_count, non_member_share)


def _generate(members: int, rng: Random, request_count: int, non_member_share: float) -> LinkageSet:
    census = _Census(rng)
    records: list[dict[str, Any]] = []
    record_labels: list[tuple[str, ...]] = []
    households: list[_Household] = []
    member_people: list[_Person] = []
    member_home: list[int] = []
    relatives: list[tuple[_Resident, _Home]] = []  # never enrolled, at a member's address
    while len(records) < members:
        for home in census.homes(len(households)):
            household = home.household
            assert household is not None
            if len(records) >= members or not any(r.enrolled for r in home.residents):
                continue
            household.number = len(households)
            made, made_labels = census.enroll(home, members - len(records))
            records += made
            record_labels += made_labels
            member_people += household.people
            member_home += [household.number] * len(household.people)
            households.append(household)
            relatives += [(r, home) for r in home.residents if not r.enrolled]

    non_members = round(request_count * non_member_share)
    about_members = request_count - non_members
    relative_count = round(non_members * RELATIVE_SHARE_OF_NON_MEMBERS) if relatives else 0
    kinds = ["member"] * about_members + ["relative"] * relative_count
    kinds += ["stranger"] * (non_members - relative_count)
    rng.shuffle(kinds)
    targets = corruption._requested_members(rng, members, about_members)
    maker = _Requests(census.builder, households, records, member_people, member_home)

    out: list[dict[str, Any]] = []
    truth: list[int] = []
    request_household: list[int] = []
    labels: list[tuple[str, ...]] = []
    next_target = iter(targets)
    for kind in kinds:
        if kind == "member":
            index = next(next_target)
            request, request_labels = maker.about_member(index)
            request_labels = (*request_labels, *record_labels[index])
            truth.append(index)
            request_household.append(member_home[index])
        elif kind == "relative":
            resident, home = relatives[int(rng.random() * len(relatives))]
            request, request_labels = _relative_request(rng, maker, resident, home)
            assert home.household is not None
            truth.append(-1)
            request_household.append(home.household.number)
        else:
            request, request_labels = _stranger_request(census, maker)
            truth.append(-1)
            request_household.append(-1)
        out.append(request)
        labels.append(request_labels)

    return LinkageSet(
        name=f"census {members:,}",
        members=records,
        requests=out,
        truth=truth,
        member_household=member_home,
        request_household=request_household,
        note=(
            "Census-structured payer-migration population: household types, children per "
            "family, birth spacing, twins, blended, cohabiting, grandparent and "
            "multigenerational households from published US statistics; children on a "
            "parent's or a sibling's SSN; never-enrolled relatives drawn from the households "
            "themselves; the second generator's corruption model."
        ),
        request_labels=labels,
    )


def _relative_request(
    rng: Random, maker: _Requests, resident: _Resident, home: _Home
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A request about a relative who never enrolled, at the member's address, perhaps
    with the household's card, and a child perhaps with a parent's or a sibling's SSN."""
    household = home.household
    assert household is not None
    kind = "twin" if resident.twin else resident.kind
    labels = ["non_member", f"census_relative:{kind}", *home.labels]
    person = resident.person
    if resident.kind in _CHILD_KINDS:
        source = _weighted_choice(rng, RELATIVE_REQUEST_SSN)
        parents = [r.person for r in home.residents if r.kind in ("subscriber", "spouse")]
        siblings = [
            r.person
            for r in home.residents
            if r.enrolled and r.kind in _CHILD_KINDS and r.person is not person
        ]
        taken: str | None = person.ssn
        if source == "parent" and parents:
            taken = parents[int(rng.random() * len(parents))].ssn
        elif source == "sibling" and siblings:
            taken = siblings[int(rng.random() * len(siblings))].ssn
        elif source == "none":
            taken = None
        if taken != person.ssn or source == "none":
            labels.append(f"request_ssn:{source}")
        person = replace(person, ssn=taken)
    card_label = _weighted_choice(rng, RELATIVE_CARD_SHARES)
    labels.append(card_label)
    card = maker._household_card(card_label, household)
    return maker._non_member_request(person, household, labels, card), tuple(labels)


def _stranger_request(census: _Census, maker: _Requests) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Someone of a census household the plan never had."""
    home = census.homes(-1)[0]
    assert home.household is not None
    resident = home.residents[int(census.rng.random() * len(home.residents))]
    labels = ["non_member", "card:none"]
    return maker._non_member_request(resident.person, home.household, labels, {}), tuple(labels)
