"""A second, independent synthetic payer-migration data set for ``bench identity``.

``generate_migration_set`` simulates the member file of a US health plan (the "old payer")
and the member-match requests it receives when people switch to other plans. It was
written without looking at the matching engine it evaluates or at the project's first
generator: its own name sources, household model and corruption model, so a matcher tuned
on one data set is tested on data it was not shaped by.

Population
    Households of one culture each (US-like shares: about 72% names of the en_US stock,
    12% Mexican, 6% Caribbean/Central/South American, 1.4% Chinese, 1.4% Indian, 1%
    Filipino, 0.8% Vietnamese, 0.8% Arab/Pakistani, and smaller Korean, Japanese, West and
    East African, Italian, German, French, Polish and Brazilian shares). Given names and
    surnames come from Faker's locale lists, extracted once and sampled with our own
    ``random.Random``; lists that carry frequencies (en_US) are sampled by them, lists
    ordered by frequency get Zipf weights by rank, and alphabetical lists form a uniform
    long tail under a few hand-ranked common names, so surnames are skewed like the real
    US (Smith about 1%, thousands of rare ones). Shapes: 34% single subscriber, 20%
    couple, 30% couple with children, 16% single parent; 2.5% add a grandparent; children
    are 0-25 and born to parents aged 18-45, with 3% twin births; 8% of first sons of a
    father are his namesake (Jr, and Sr on the father 70% of the time). Spouses keep their
    own surname (10% en_US, 45% Hispanic), hyphenate (3%) or take the husband's; Hispanic
    people carry both surnames on the record 25% of the time; compound given names
    ("María José", "Anne-Marie") and middle names (full or an initial) are common;
    immigrants' children often get an English first name with the heritage name as middle.
    Members of a household share the address, ZIP, phone (adults have their own cell 25% of
    the time) and the subscriber id on their cards, which is the subscriber's member id;
    member ids are sequential within a household (12% of dependents were added later and
    have a later number). SSNs are unique and valid-looking; 90% of adults and 60% of
    dependents have their own on file, 15% of dependents' records hold the subscriber's
    (``ssn_carried``). 24 regions with real 3-digit ZIP prefixes (about 3,500 ZIPs) and
    their area codes; Hispanic and Asian households lean to the regions where they live.

Requests (1 - ``non_member_share`` about members, chosen uniformly; rates below are per
request where the event can apply)
    moved 25% (40% of them to another region; 80% a new phone; 60% show no card),
    card data when not moved: member id 50%, member id with one digit wrong 4%, subscriber
    id only 12%, a dependent giving the subscriber's member id as their own 10%, none 24%;
    surname: married 3.5% of women and 0.4% of men aged 18-65 (maiden name given as
    previous family 40%), hyphenated / double surname added or dropped 2.5%; given names:
    nickname 8% (both directions, where the name has one), middle name used as first 3%,
    initial only 1%, given and family swapped 1%, one-letter typo 2% in each of given and
    family, accents dropped 35% (of names with accents), compound name split or joined 30%
    (of compound names), Jr/Sr dropped 35%, all upper case 4%; birth date: day recorded as
    01 0.4%, recorded as 01-01 0.2%, one digit wrong 1%, day and month swapped 0.6% (only
    when both are 12 or less), year off by one 0.5%; omitted: SSN 30% (and whenever the
    person has none), SSN with a typo 2%, phone 15%, sex 3%, address 4%; address written
    another way (Street for St, # for Apt, one line) 15%. The new plan's form holds the
    middle name 45% of the time, its initial 20%.
    Non-members: half people from households not on the plan, half relatives of a member
    who never enrolled (twin, sibling, father with the son's given name, spouse) who live at
    the member's address, share the surname and often show the household's card.

Every request carries labels saying what happened (``request_labels``), for recall by label.
"""

from __future__ import annotations

import gc
import importlib
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate
from random import Random
from typing import Any, TypeVar

from payerbridge_tools.bench.identity_types import LinkageSet

__all__ = ["LABELS", "generate_migration_set"]

_T = TypeVar("_T")

# -- population model ------------------------------------------------------------------------

REFERENCE_YEAR = 2025  # the data set is "as of" mid-2025: nobody is born after June 2025
OLDEST_ADULT_YEAR, YOUNGEST_ADULT_YEAR = 1935, 2005
OLDEST_GRANDPARENT_YEAR = 1925
DEPENDENT_CHILD_MAX_AGE = 25  # children stay on a parent's plan until 26
PLAN_PREFIX = "ZGP"  # this plan's member ids: ZGP + 9 digits

HOUSEHOLD_SHAPES = (("single", 0.34), ("couple", 0.20), ("family", 0.30), ("single_parent", 0.16))
CHILD_COUNTS = ((1, 0.38), (2, 0.37), (3, 0.17), (4, 0.06), (5, 0.02))
TWIN_BIRTH_RATE = 0.03  # US twin births are about 3%
TWINS_SAME_SEX_RATE = 0.6  # identical twins plus same-sex fraternal twins
SAME_SEX_COUPLE_RATE = 0.04
GRANDPARENT_RATE = 0.025  # a subscriber's parent covered as a dependent
NAMESAKE_SON_RATE = 0.08  # a father's first son named after him (Jr)
FATHER_SR_RATE = 0.7  # the namesake's father then carries Sr on the record
SINGLE_PARENT_OTHER_SURNAME_RATE = 0.25  # children of a single parent with the other parent's name
HYPHENATED_SPOUSE_RATE = 0.03  # spouse records "Maiden-Married"
LATE_DEPENDENT_RATE = 0.12  # dependents added later get a later, non-sequential member id
OWN_CELL_RATE = 0.25  # adults whose phone is their own cell, not the household line
RECORD_PHONE_MISSING_RATE = 0.08
RECORD_SEX_MISSING_RATE = 0.005
ADULT_SSN_ON_FILE_RATE = 0.9
DEPENDENT_SSN_ON_FILE_RATE = 0.6
DEPENDENT_SSN_CARRIED_RATE = 0.15  # the dependent's record holds the subscriber's SSN
CHILD_WITHOUT_SSN_RATE = 0.04  # never issued or never reported
RECORD_MIDDLE_INITIAL_RATE = 0.2  # of recorded middle names, only the initial
UNIT_RATE = 0.22  # addresses with an apartment or unit line

# -- request (corruption) model: rates per request where the event can apply -----------------

MOVED_RATE = 0.25
MOVED_OTHER_REGION_RATE = 0.4
MOVED_NEW_PHONE_RATE = 0.8
MOVED_NO_CARD_RATE = 0.6  # a mover's new plan often never asked for the old card
CARD_SHARES = (  # when the request carries card data at all
    ("card:member_id", 0.50),
    ("card:member_id_typo", 0.04),
    ("card:subscriber_id_only", 0.12),
    ("card:subscriber_card", 0.10),  # dependents only; a subscriber gives his own id
    ("card:none", 0.24),
)
CARD_WITH_SUBSCRIBER_ID_RATE = 0.6  # a member id given together with the subscriber id
MARRIED_FEMALE_RATE, MARRIED_MALE_RATE = 0.035, 0.004  # adults 18-65
MARRIED_MIN_AGE, MARRIED_MAX_AGE = 18, 65
MAIDEN_AS_PREVIOUS_RATE = 0.4  # the form also asks for the previous surname
MARRIED_OWN_CULTURE_RATE = 0.75
HYPHENATED_RATE = 0.025
NICKNAME_RATE = 0.08
MIDDLE_AS_FIRST_RATE = 0.03
INITIAL_ONLY_RATE = 0.01
NAMES_SWAPPED_RATE = 0.01
GIVEN_TYPO_RATE = 0.02
FAMILY_TYPO_RATE = 0.02
ACCENTS_DROPPED_RATE = 0.35
COMPOUND_NAME_RATE = 0.3
SUFFIX_DROPPED_RATE = 0.35
UPPERCASE_RATE = 0.04
REQUEST_MIDDLE_FULL_RATE, REQUEST_MIDDLE_INITIAL_RATE = 0.45, 0.20
DOB_EVENTS = (  # at most one per request
    ("dob_day_01", 0.004),
    ("dob_month_day_0101", 0.002),
    ("dob_digit_typo", 0.010),
    ("dob_day_month_swapped", 0.006),
    ("dob_year_off_by_one", 0.005),
)
NO_SSN_RATE = 0.30
SSN_TYPO_RATE = 0.02
NO_PHONE_RATE = 0.15
NO_SEX_RATE = 0.03
NO_ADDRESS_RATE = 0.04
ADDRESS_FORMAT_RATE = 0.15

# -- non-members -----------------------------------------------------------------------------

RELATIVE_SHARE_OF_NON_MEMBERS = 0.5
RELATIVE_KINDS = ("twin", "sibling", "parent_namesake", "spouse_not_enrolled")
RELATIVE_CARD_SHARES = (  # the household's card in a relative's hands
    ("card:subscriber_id_only", 0.35),
    ("card:subscriber_card", 0.25),
    ("card:none", 0.40),
)
TWIN_ADJACENT_SSN_RATE = 0.5  # twins' SSNs were issued together: serial numbers one apart
ANCHOR_TRIES = 60

LABELS: tuple[str, ...] = (
    "moved",
    *(label for label, _ in CARD_SHARES),
    "married",
    "hyphenated",
    "nickname",
    "given_typo",
    "family_typo",
    "names_swapped",
    "middle_as_first",
    "initial_only",
    "accents_dropped",
    "compound_name",
    "suffix_dropped",
    "uppercase",
    *(label for label, _ in DOB_EVENTS),
    "no_ssn",
    "ssn_typo",
    "no_phone",
    "no_sex",
    "no_address",
    "address_format",
    "non_member",
    *(f"relative:{kind}" for kind in RELATIVE_KINDS),
)
"""Every label ``request_labels`` can hold."""

# -- our own name knowledge (no nickname package) --------------------------------------------

_NICKNAMES: dict[str, tuple[str, ...]] = {
    # English, men
    "William": ("Bill", "Will", "Billy", "Liam"),
    "Robert": ("Bob", "Rob", "Bobby", "Robbie"),
    "Richard": ("Rick", "Rich", "Dick", "Ricky"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Jack", "Johnny"),
    "Joseph": ("Joe", "Joey"),
    "Michael": ("Mike", "Mikey"),
    "Thomas": ("Tom", "Tommy"),
    "Charles": ("Charlie", "Chuck"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Donald": ("Don", "Donnie"),
    "Steven": ("Steve",),
    "Stephen": ("Steve",),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Kenneth": ("Ken", "Kenny"),
    "Joshua": ("Josh",),
    "Andrew": ("Andy", "Drew"),
    "Benjamin": ("Ben", "Benny"),
    "Samuel": ("Sam", "Sammy"),
    "Alexander": ("Alex", "Xander"),
    "Nicholas": ("Nick",),
    "Jonathan": ("Jon",),
    "Timothy": ("Tim",),
    "Gregory": ("Greg",),
    "Patrick": ("Pat",),
    "Raymond": ("Ray",),
    "Lawrence": ("Larry",),
    "Gerald": ("Jerry",),
    "Jeffrey": ("Jeff",),
    "Ronald": ("Ron", "Ronnie"),
    "Douglas": ("Doug",),
    "Peter": ("Pete",),
    "Frederick": ("Fred",),
    "Zachary": ("Zach",),
    "Nathaniel": ("Nate",),
    "Theodore": ("Ted", "Teddy", "Theo"),
    "Harold": ("Harry", "Hal"),
    "Henry": ("Hank", "Harry"),
    "Walter": ("Walt",),
    "Eugene": ("Gene",),
    "Leonard": ("Len", "Lenny"),
    "Vincent": ("Vince", "Vinny"),
    "Phillip": ("Phil",),
    "Gabriel": ("Gabe",),
    "Jacob": ("Jake",),
    # English, women
    "Elizabeth": ("Liz", "Beth", "Betsy", "Betty", "Lizzie"),
    "Katherine": ("Kate", "Katie", "Kathy"),
    "Catherine": ("Cathy", "Kate", "Cat"),
    "Kathleen": ("Kathy", "Kate"),
    "Margaret": ("Maggie", "Peggy", "Meg"),
    "Jennifer": ("Jen", "Jenny"),
    "Patricia": ("Pat", "Patty", "Trish"),
    "Susan": ("Sue", "Susie"),
    "Deborah": ("Debbie", "Deb"),
    "Rebecca": ("Becky", "Becca"),
    "Jessica": ("Jess", "Jessie"),
    "Victoria": ("Vicky", "Tori"),
    "Christina": ("Chris", "Tina"),
    "Christine": ("Chris", "Tina"),
    "Samantha": ("Sam", "Sammie"),
    "Alexandra": ("Alex", "Lexi"),
    "Abigail": ("Abby",),
    "Kimberly": ("Kim",),
    "Pamela": ("Pam",),
    "Barbara": ("Barb",),
    "Dorothy": ("Dot", "Dottie"),
    "Cynthia": ("Cindy",),
    "Judith": ("Judy",),
    "Theresa": ("Terry", "Tess"),
    "Jacqueline": ("Jackie",),
    "Stephanie": ("Steph",),
    "Allison": ("Ally",),
    "Madison": ("Maddie",),
    "Gabrielle": ("Gabby",),
    # Spanish
    "José": ("Pepe", "Chepe"),
    "Francisco": ("Paco", "Pancho", "Frank"),
    "Alejandro": ("Alex", "Alejo"),
    "Guadalupe": ("Lupe", "Lupita"),
    "Jesús": ("Chuy",),
    "Enrique": ("Quique", "Henry"),
    "Ignacio": ("Nacho",),
    "Eduardo": ("Lalo", "Eddie"),
    "Roberto": ("Beto",),
    "Alberto": ("Beto",),
    "Manuel": ("Manny", "Manolo"),
    "Dolores": ("Lola",),
    "Rosario": ("Chayo",),
    "Antonio": ("Toño", "Tony"),
    "Fernando": ("Nando",),
    "Guillermo": ("Memo",),
    "Rafael": ("Rafa",),
    "Javier": ("Javi",),
    "Graciela": ("Chela",),
    "Isabel": ("Chabela",),
    "Josefina": ("Pepa", "Fina"),
    # others
    "Mohammed": ("Mo",),
    "Muhammad": ("Mo",),
    "Katarzyna": ("Kasia",),
    "Małgorzata": ("Gosia",),
    "Aleksander": ("Olek",),
}

_FORMAL_NAMES: dict[str, tuple[str, ...]] = {}
for _formal, _short_names in _NICKNAMES.items():
    for _short in _short_names:
        _FORMAL_NAMES[_short] = (*_FORMAL_NAMES.get(_short, ()), _formal)

_ANGLO_COMPOUNDS_FEMALE = (
    "Anne-Marie",
    "Mary Ann",
    "Mary Beth",
    "Mary-Kate",
    "Sarah-Jane",
    "Jo Ann",
    "Lee Ann",
    "Ann Marie",
    "Mary Ellen",
    "Mary Jo",
)
_ANGLO_COMPOUNDS_MALE = ("John Paul", "Billy Ray", "Jean-Paul", "Jean-Pierre", "Billy Joe")
_HISPANIC_COMPOUND_FEMALE_WHOLE = ("María José", "Ana Sofía", "María Fernanda", "Luz María")
_HISPANIC_COMPOUND_MALE_HEADS = ("José", "Juan", "Luis", "Jesús", "Juan Pablo")

_KOREAN_SURNAMES = (  # ordered by frequency among Korean Americans
    "Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim", "Han", "Oh",
    "Seo", "Shin", "Kwon", "Hwang", "Ahn", "Song", "Yoo", "Hong", "Jeon", "Ko", "Moon", "Yang",
    "Son", "Bae", "Baek", "Heo", "Nam", "Noh", "Ha", "Kwak", "Sung", "Cha", "Woo", "Min",
)  # fmt: skip
_KOREAN_MALE = (
    "Min-jun", "Ji-hoon", "Hyun-woo", "Sung-min", "Jae-won", "Dong-hyun", "Young-ho",
    "Sang-woo", "Jin-ho", "Seung-hyun", "Tae-yang", "Joon-young", "Kyung-soo", "Jun",
    "Hoon", "Min-ho", "Chang-min", "Woo-jin", "Yong-su", "Byung-chul",
)  # fmt: skip
_KOREAN_FEMALE = (
    "Seo-yeon", "Ji-woo", "Eun-ji", "Soo-jin", "Min-ji", "Hye-jin", "Ji-young", "Yu-na",
    "Seo-yun", "Ha-eun", "Jin-a", "Mi-young", "Sun-hee", "Eun-young", "Hyun-joo",
    "Ji-eun", "Soo-ah", "Yeon-woo", "Kyung-ja", "Mi-kyung",
)  # fmt: skip
_ARAB_MALE_COMMON = (
    "Mohammed", "Muhammad", "Ahmed", "Ali", "Omar", "Hassan", "Hussein", "Mohamed",
    "Yusuf", "Ibrahim", "Khalid", "Mahmoud", "Mustafa", "Abdullah", "Karim", "Samir",
    "Tariq", "Bilal", "Imran", "Faisal", "Osama", "Waleed", "Nabil", "Ziad",
)  # fmt: skip
_ARAB_FEMALE = (
    "Fatima", "Aisha", "Mariam", "Layla", "Noor", "Sara", "Zainab", "Amira", "Yasmin",
    "Huda", "Rania", "Hana", "Salma", "Nadia", "Leila", "Samira", "Dina", "Reem", "Farah",
    "Ayesha", "Sana", "Hiba", "Lina", "Rasha", "Iman", "Khadija", "Nour", "Asma",
)  # fmt: skip
_ARAB_SURNAMES_COMMON = (
    "Khan", "Ahmed", "Ali", "Hassan", "Hussain", "Rahman", "Mohamed", "Abdullah", "Haddad",
    "Saleh", "Mansour", "Nasser", "Ibrahim", "Qureshi", "Malik", "Siddiqui", "Farah",
    "Khalil", "Awad", "Hamdan", "Sheikh", "Chaudhry", "Butt", "Abbas", "Youssef",
)  # fmt: skip
_FILIPINO_SURNAMES = (
    "Santos", "Reyes", "Cruz", "Bautista", "Garcia", "Mendoza", "Ocampo", "Torres", "Tomas",
    "Castillo", "Flores", "Villanueva", "Ramos", "Castro", "Rivera", "Aquino", "Navarro",
    "Dela Cruz", "De Leon", "Del Rosario", "Salazar", "Mercado", "Manalo", "Pascual",
    "Gonzales", "Lopez", "Dizon", "Soriano", "Valdez", "Domingo", "Gutierrez", "Aguilar",
    "Fernandez", "Panganiban", "Macaraeg", "Dimaculangan",
)  # fmt: skip
_INDIAN_SURNAMES_COMMON = (
    "Patel", "Shah", "Singh", "Kumar", "Sharma", "Reddy", "Gupta", "Desai", "Rao", "Mehta",
    "Joshi", "Iyer", "Nair", "Das", "Khan", "Agarwal", "Chopra", "Bhatt", "Pillai", "Menon",
)  # fmt: skip
_CHINESE_SURNAMES_COMMON = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
    "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo",
)  # fmt: skip
_BRAZILIAN_SURNAMES_COMMON = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho",
)  # fmt: skip
_VIETNAMESE_FEMALE_MIDDLE = "Thị"

# Street names: Faker's en_US name lists and street suffixes, plus the everyday street names
# every US town has, and the USPS abbreviations the old plan's standardised records use.
_COMMON_STREET_NAMES = (
    "Main", "Oak", "Maple", "Park", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill",
    "Church", "Walnut", "Spring", "Ridge", "Lincoln", "Jackson", "Highland", "Center",
    "Sunset", "Willow", "Mill", "Cherry", "River", "Meadow", "Forest", "Franklin", "Madison",
)  # fmt: skip
_STREET_SUFFIX_WEIGHTS = {
    "Street": 30.0, "Avenue": 18.0, "Drive": 14.0, "Road": 12.0, "Lane": 10.0, "Court": 8.0,
    "Way": 6.0, "Place": 5.0, "Circle": 4.0, "Trail": 3.0, "Parkway": 2.0, "Terrace": 2.0,
}  # fmt: skip
_UNCOMMON_SUFFIX_WEIGHT = 0.03  # Faker's 200 rarer suffixes share about 5%
_USPS_SUFFIXES = {
    "Street": "St", "Avenue": "Ave", "Drive": "Dr", "Road": "Rd", "Lane": "Ln", "Court": "Ct",
    "Place": "Pl", "Circle": "Cir", "Trail": "Trl", "Parkway": "Pkwy", "Terrace": "Ter",
    "Highway": "Hwy", "Heights": "Hts", "Square": "Sq", "Crossing": "Xing", "Point": "Pt",
    "Ridge": "Rdg", "Creek": "Crk", "Lake": "Lk", "Valley": "Vly", "View": "Vw", "Grove": "Grv",
    "Meadows": "Mdws", "Gardens": "Gdns", "Estates": "Est", "Station": "Sta", "Center": "Ctr",
    "Junction": "Jct", "Expressway": "Expy", "Freeway": "Fwy", "Turnpike": "Tpke",
    "Mountain": "Mtn", "Springs": "Spgs", "Hills": "Hls", "Hill": "Hl", "Island": "Is",
}  # fmt: skip
_FULL_SUFFIXES = {short: full for full, short in _USPS_SUFFIXES.items()}
_UNIT_WORDS = ("Apt", "Apt", "Apt", "Unit", "#")


# -- weighted sampling -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Picker:
    """Weighted sampling by bisection of cumulative weights: one ``random()`` per pick."""

    values: tuple[str, ...]
    cumulative: tuple[float, ...]

    def pick(self, rng: Random) -> str:
        return self.values[bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


def _picker(parts: Iterable[tuple[Sequence[tuple[str, float]], float]]) -> _Picker:
    """Merge weighted name lists, each scaled to its share of the mass (duplicates add up)."""
    merged: dict[str, float] = {}
    for pairs, mass in parts:
        total = sum(weight for _, weight in pairs)
        if not pairs or total <= 0:
            continue
        for name, weight in pairs:
            merged[name] = merged.get(name, 0.0) + mass * weight / total
    if not merged:
        raise ValueError("no names to sample")
    return _Picker(tuple(merged), tuple(accumulate(merged.values())))


def _uniform(names: Iterable[str]) -> list[tuple[str, float]]:
    return [(name, 1.0) for name in names]


def _ranked(names: Iterable[str], exponent: float = 1.0) -> list[tuple[str, float]]:
    """Zipf weights for a list ordered from most to least common."""
    return [(name, 1.0 / (rank + 1) ** exponent) for rank, name in enumerate(names)]


def _names_of(pairs: Sequence[tuple[str, float]]) -> list[str]:
    return [name for name, _ in pairs]


def _randint(rng: Random, low: int, high: int) -> int:
    """``rng.randint`` without its overhead (millions of calls)."""
    return low + int(rng.random() * (high - low + 1))


def _choice(rng: Random, options: Sequence[_T]) -> _T:
    return options[int(rng.random() * len(options))]


def _weighted_choice(rng: Random, shares: Sequence[tuple[_T, float]]) -> _T:
    """One of the values; ``shares`` sum to 1 (the module's share tables)."""
    draw = rng.random()
    for value, share in shares:
        draw -= share
        if draw < 0:
            return value
    return shares[-1][0]


# -- Faker's lists, read once ----------------------------------------------------------------


@cache
def _faker_list(locale: str, attribute: str, kind: str = "person") -> tuple[tuple[str, float], ...]:
    """A Faker provider class attribute as (name, weight); weight 1 where Faker gives none.

    All-capital romanisations (zh_TW's "CHIA-HAO") are title-cased as a US form would be.
    """
    provider = importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
    source = getattr(provider, attribute)
    if isinstance(source, Mapping):
        pairs = [(str(name), float(weight)) for name, weight in source.items()]
    else:
        pairs = [(str(name), 1.0) for name in source]
    tidy = [(name.strip().title() if name.isupper() else name.strip(), w) for name, w in pairs]
    return tuple((name, weight) for name, weight in tidy if name)


def _faker_names(locale: str, attribute: str) -> list[str]:
    return _names_of(_faker_list(locale, attribute))


# -- cultures --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Culture:
    """Where a household's names come from and the naming customs that go with them."""

    key: str
    share: float
    male: _Picker
    female: _Picker
    surnames: _Picker
    group: str = "other"  # "hispanic" / "asian": regions weigh where these communities live
    middle_rate: float = 0.5
    middle_male: _Picker | None = None  # None: middle names come from the given-name pool
    middle_female: _Picker | None = None
    double_surname_rate: float = 0.0  # the record holds both surnames (paternal maternal)
    spouse_keeps_surname_rate: float = 0.1
    compound_rate: float = 0.0
    compound: Callable[[Random, str, _Picker], str] | None = None
    english_first_adult: float = 0.0  # an English first name instead of a heritage one
    english_first_child: float = 0.0
    heritage_middle: bool = False  # with an English first name, the heritage name as middle
    middle_from_surnames: bool = False  # Filipino custom: the mother's maiden name as middle


def _anglo_compound(rng: Random, sex: str, pool: _Picker) -> str:
    return _choice(rng, _ANGLO_COMPOUNDS_MALE if sex == "male" else _ANGLO_COMPOUNDS_FEMALE)


def _hispanic_compound(rng: Random, sex: str, pool: _Picker) -> str:
    if sex == "female":
        if rng.random() < 0.3:
            return _choice(rng, _HISPANIC_COMPOUND_FEMALE_WHOLE)
        second = pool.pick(rng)
        return f"María {second}" if second != "María" else "María Elena"
    head = _choice(rng, _HISPANIC_COMPOUND_MALE_HEADS)
    second = pool.pick(rng)
    return f"{head} {second}" if second not in head else f"{head} Carlos"


@cache
def _cultures() -> tuple[_Culture, ...]:
    """The cultures and their US shares; the en_US stock takes what the others leave."""
    us_male = _faker_list("en_US", "first_names_male")
    us_female = _faker_list("en_US", "first_names_female")
    # SSA-style rare given names (Aaliyah, Jayden...) as the tail of the en_US stock
    anglo_male = _picker([(us_male, 0.85), (_faker_list("en", "first_names_male"), 0.15)])
    anglo_female = _picker([(us_female, 0.85), (_faker_list("en", "first_names_female"), 0.15)])
    anglo_surnames = _picker(
        [
            # Faker's en_US list is the top 1,000 names (about 45% of Americans) with
            # their frequencies: Smith ends up near its real 0.8%
            (_faker_list("en_US", "last_names"), 0.55),
            # the long tail: names of European origin, each rare
            (_faker_list("en_IE", "last_names"), 0.12),
            (_faker_list("en_GB", "last_names"), 0.06),
            (_faker_list("en", "last_names"), 0.06),
            (_faker_list("de_DE", "last_names"), 0.07),
            (_faker_list("it_IT", "last_names"), 0.07),
            (_faker_list("fr_FR", "last_names"), 0.03),
            (_faker_list("nl_NL", "last_names"), 0.02),
            (_faker_list("sv_SE", "last_names"), 0.02),
        ]
    )
    co_male = _ranked(_faker_names("es_CO", "first_names_male"), 0.9)
    co_female = _ranked(_faker_names("es_CO", "first_names_female"), 0.9)
    # es_CO's lists are frequency-ordered; Rodríguez, García... each about 2% of Hispanics
    co_surnames = _ranked(_faker_names("es_CO", "last_names"), 0.6)
    es_surnames = _faker_list("es_ES", "last_names")

    def hispanic(key: str, share: float, male: _Picker, female: _Picker, sur: _Picker) -> _Culture:
        return _Culture(
            key,
            share,
            male,
            female,
            sur,
            group="hispanic",
            middle_rate=0.3,
            double_surname_rate=0.25,
            spouse_keeps_surname_rate=0.45,
            compound_rate=0.15,
            compound=_hispanic_compound,
            english_first_adult=0.05,
            english_first_child=0.2,
        )

    def heritage(
        key: str,
        share: float,
        male: _Picker,
        female: _Picker,
        sur: _Picker,
        group: str = "asian",
        adult: float = 0.3,
        child: float = 0.55,
    ) -> _Culture:
        return _Culture(
            key,
            share,
            male,
            female,
            sur,
            group=group,
            middle_rate=0.2,
            english_first_adult=adult,
            english_first_child=child,
            heritage_middle=True,
        )

    def european(key: str, share: float, locale: str, surnames: _Picker) -> _Culture:
        return _Culture(
            key,
            share,
            _picker([(_faker_list(locale, "first_names_male"), 1.0)]),
            _picker([(_faker_list(locale, "first_names_female"), 1.0)]),
            surnames,
            english_first_adult=0.5,
            english_first_child=0.7,
        )

    vi_middles = _faker_names("vi_VN", "middle_names")
    cultures = [
        hispanic(
            "mexican",
            0.12,
            _picker([(co_male, 0.6), (_faker_list("es_MX", "first_names_male"), 0.4)]),
            _picker([(co_female, 0.6), (_faker_list("es_MX", "first_names_female"), 0.4)]),
            _picker([(co_surnames, 0.7), (_faker_list("es_MX", "last_names"), 0.3)]),
        ),
        hispanic(
            "latin_american",
            0.06,
            _picker(
                [
                    (co_male, 0.5),
                    (_faker_list("es_ES", "first_names_male"), 0.3),
                    (_faker_list("es_AR", "first_names_male"), 0.2),
                ]
            ),
            _picker(
                [
                    (co_female, 0.5),
                    (_faker_list("es_ES", "first_names_female"), 0.3),
                    (_faker_list("es_AR", "first_names_female"), 0.2),
                ]
            ),
            _picker([(co_surnames, 0.6), (es_surnames, 0.4)]),
        ),
        heritage(
            "chinese",
            0.014,
            _picker(
                [
                    (_faker_list("zh_CN", "first_romanized_names"), 0.5),
                    (_faker_list("zh_TW", "first_romanized_names_male"), 0.5),
                ]
            ),
            _picker(
                [
                    (_faker_list("zh_CN", "first_romanized_names"), 0.5),
                    (_faker_list("zh_TW", "first_romanized_names_female"), 0.5),
                ]
            ),
            _picker(
                [
                    (_ranked(_CHINESE_SURNAMES_COMMON, 0.8), 0.65),
                    (_faker_list("zh_CN", "last_romanized_names"), 0.2),
                    (_ranked(_faker_names("zh_TW", "last_romanized_names")), 0.15),
                ]
            ),
        ),
        _Culture(
            "indian",
            0.014,
            _picker([(_faker_list("en_IN", "first_names_male"), 1.0)]),
            _picker([(_faker_list("en_IN", "first_names_female"), 1.0)]),
            _picker(
                [
                    (_ranked(_INDIAN_SURNAMES_COMMON, 0.9), 0.5),
                    (_faker_list("en_IN", "last_names"), 0.5),
                ]
            ),
            group="asian",
            middle_rate=0.3,
            english_first_child=0.1,
        ),
        _Culture(
            "filipino",
            0.010,
            _picker([(us_male, 1.0)]),
            _picker([(us_female, 1.0)]),
            _picker([(_ranked(_FILIPINO_SURNAMES, 0.8), 0.6), (es_surnames, 0.4)]),
            group="asian",
            middle_rate=0.7,
            middle_from_surnames=True,
        ),
        _Culture(
            "vietnamese",
            0.008,
            _picker([(_faker_list("vi_VN", "first_names_male"), 1.0)]),
            _picker([(_faker_list("vi_VN", "first_names_female"), 1.0)]),
            # Nguyễn is about 40% of Vietnamese Americans; Faker's list is frequency-ordered
            _picker([(_ranked(_faker_names("vi_VN", "last_names"), 1.1), 1.0)]),
            group="asian",
            middle_rate=0.8,
            middle_male=_picker([(_uniform(n for n in vi_middles if n != "Thị"), 1.0)]),
            middle_female=_picker([(_ranked(["Thị", *vi_middles[2:]], 0.3), 1.0)]),
            english_first_adult=0.25,
            english_first_child=0.5,
            heritage_middle=True,
        ),
        _Culture(
            "arab",
            0.008,
            _picker(
                [
                    (_ranked(_ARAB_MALE_COMMON, 0.8), 0.6),
                    (_faker_list("en_PK", "first_names"), 0.4),  # Pakistani boys' names
                ]
            ),
            _picker([(_ranked(_ARAB_FEMALE, 0.5), 1.0)]),
            _picker(
                [
                    (_ranked(_ARAB_SURNAMES_COMMON, 0.8), 0.5),
                    (_faker_list("en_PK", "last_names"), 0.5),
                ]
            ),
            middle_rate=0.25,
            spouse_keeps_surname_rate=0.5,
            english_first_child=0.1,
        ),
        heritage(
            "korean",
            0.005,
            _picker([(_uniform(_KOREAN_MALE), 1.0)]),
            _picker([(_uniform(_KOREAN_FEMALE), 1.0)]),
            _picker([(_ranked(_KOREAN_SURNAMES, 1.1), 1.0)]),
            adult=0.4,
            child=0.7,
        ),
        heritage(
            "japanese",
            0.003,
            _picker([(_faker_list("ja_JP", "first_romanized_names_male"), 1.0)]),
            _picker([(_faker_list("ja_JP", "first_romanized_names_female"), 1.0)]),
            _picker([(_ranked(_faker_names("ja_JP", "last_romanized_names"), 0.8), 1.0)]),
            adult=0.5,
            child=0.7,
        ),
        heritage(
            "west_african",
            0.004,
            _picker([(_faker_list("yo_NG", "first_names_male"), 1.0)]),
            _picker([(_faker_list("yo_NG", "first_names_female"), 1.0)]),
            _picker(
                [
                    (_faker_list("yo_NG", "last_names"), 0.7),
                    (_faker_list("en_NG", "last_names"), 0.3),
                ]
            ),
            group="other",
            adult=0.35,
            child=0.5,
        ),
        _Culture(
            "east_african",
            0.002,
            _picker([(_ranked(_faker_names("en_KE", "first_names_male"), 0.7), 1.0)]),
            _picker([(_ranked(_faker_names("en_KE", "first_names_female"), 0.7), 1.0)]),
            _picker([(_ranked(_faker_names("en_KE", "last_names"), 0.7), 1.0)]),
            middle_rate=0.3,
        ),
        european("italian", 0.008, "it_IT", _picker([(_faker_list("it_IT", "last_names"), 1.0)])),
        european("german", 0.006, "de_DE", _picker([(_faker_list("de_DE", "last_names"), 1.0)])),
        european("french", 0.003, "fr_FR", _picker([(_faker_list("fr_FR", "last_names"), 1.0)])),
        european(
            "polish",
            0.006,
            "pl_PL",
            _picker(
                [
                    (_ranked(_faker_names("pl_PL", "male_last_names"), 0.7), 0.5),
                    (_faker_list("pl_PL", "unisex_last_names"), 0.5),
                ]
            ),
        ),
        _Culture(
            "brazilian",
            0.004,
            _picker([(_faker_list("pt_BR", "first_names_male"), 1.0)]),
            _picker([(_faker_list("pt_BR", "first_names_female"), 1.0)]),
            _picker(
                [
                    (_ranked(_BRAZILIAN_SURNAMES_COMMON, 0.8), 0.6),
                    (_faker_list("pt_BR", "last_names"), 0.4),
                ]
            ),
            group="hispanic",
            middle_rate=0.3,
            double_surname_rate=0.3,
            spouse_keeps_surname_rate=0.3,
            english_first_child=0.2,
        ),
    ]
    anglo = _Culture(
        "anglo",
        1.0 - sum(culture.share for culture in cultures),
        anglo_male,
        anglo_female,
        anglo_surnames,
        middle_rate=0.55,
        compound_rate=0.01,
        compound=_anglo_compound,
    )
    return (anglo, *cultures)


# -- geography -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Region:
    name: str
    weight: float  # relative population
    zip3s: tuple[str, ...]
    area_codes: tuple[str, ...]
    hispanic: float = 1.0  # how much more (or less) often Hispanic households live here
    asian: float = 1.0


# Population weight and how much more (or less) often Hispanic and Asian households live there
_REGION_WEIGHTS = {
    "New York": (10.0, 1.2, 1.8),
    "Los Angeles": (8.0, 2.8, 2.5),
    "Chicago": (5.0, 1.3, 1.0),
    "Houston": (4.0, 2.4, 1.3),
    "Dallas": (4.0, 1.9, 1.0),
    "Phoenix": (3.0, 2.0, 0.6),
    "Philadelphia": (3.5, 0.6, 0.9),
    "Miami": (3.5, 3.0, 0.4),
    "Atlanta": (3.5, 0.7, 0.9),
    "Boston": (2.8, 0.6, 1.3),
    "San Francisco": (4.0, 1.4, 4.0),
    "Seattle": (2.5, 0.6, 2.0),
    "Denver": (1.8, 1.4, 0.6),
    "Minneapolis": (2.2, 0.4, 0.9),
    "Detroit": (2.7, 0.4, 0.7),
    "San Antonio": (1.7, 3.5, 0.4),
    "Washington": (3.5, 0.8, 1.6),
    "North Carolina": (3.0, 0.6, 0.6),
    "Ohio": (3.5, 0.3, 0.5),
    "Rural Midwest": (3.0, 0.5, 0.3),
    "Deep South": (3.0, 0.3, 0.3),
    "Central Valley": (2.0, 3.0, 1.5),
    "Central Florida": (3.0, 1.3, 0.6),
    "Las Vegas": (1.5, 1.7, 1.3),
}
_REGION_ZIP3S = {  # real 3-digit ZIP prefixes of the region
    "New York": "100 104 105 110 112 113 114 117 070 071 073 076",
    "Los Angeles": "900 902 903 905 906 907 908 910 911 913 917 926 927",
    "Chicago": "600 601 603 604 605 606 607",
    "Houston": "770 772 773 774 775",
    "Dallas": "750 751 752 760 761 762",
    "Phoenix": "850 852 853",
    "Philadelphia": "190 191 193 080 081",
    "Miami": "330 331 333 334",
    "Atlanta": "300 301 302 303",
    "Boston": "018 019 021 022 024",
    "San Francisco": "940 941 943 944 945 946 947 950 951",
    "Seattle": "980 981 983 984",
    "Denver": "800 801 802 803",
    "Minneapolis": "550 551 553 554",
    "Detroit": "480 481 482 483",
    "San Antonio": "780 781 782",
    "Washington": "200 207 208 220 221 222 223",
    "North Carolina": "270 272 275 276 277 280 282",
    "Ohio": "430 432 440 441 443 450 452",
    "Rural Midwest": "500 501 502 503 506 680 681 683 660 662",
    "Deep South": "350 351 352 354 356 386 387 390 392 700 701 706",
    "Central Valley": "932 933 936 937 953 956 958",
    "Central Florida": "327 328 335 336 337 338 347",
    "Las Vegas": "889 890 891",
}
_REGION_AREA_CODES = {
    "New York": "212 718 917 347 516 631 914 201 973",
    "Los Angeles": "213 310 323 562 626 818 714 949",
    "Chicago": "312 773 708 847 630 815",
    "Houston": "713 281 832 346",
    "Dallas": "214 469 972 817 682",
    "Phoenix": "602 480 623",
    "Philadelphia": "215 267 610 484 856",
    "Miami": "305 786 954 561",
    "Atlanta": "404 470 678 770",
    "Boston": "617 857 781 978",
    "San Francisco": "415 510 650 408 925 669",
    "Seattle": "206 253 425 360",
    "Denver": "303 720 970",
    "Minneapolis": "612 651 763 952",
    "Detroit": "313 248 734 586",
    "San Antonio": "210 830 726",
    "Washington": "202 301 703 571 240",
    "North Carolina": "919 984 336 704 980",
    "Ohio": "614 216 330 440 513",
    "Rural Midwest": "515 319 563 402 308 785 316",
    "Deep South": "205 256 334 601 662 504 318",
    "Central Valley": "559 661 209 916",
    "Central Florida": "407 321 813 727 941",
    "Las Vegas": "702 725",
}
_REGIONS = tuple(
    _Region(
        name,
        weight,
        tuple(_REGION_ZIP3S[name].split()),
        tuple(_REGION_AREA_CODES[name].split()),
        hispanic,
        asian,
    )
    for name, (weight, hispanic, asian) in _REGION_WEIGHTS.items()
)
_ZIPS_PER_ZIP3 = (15, 35)  # delivery ZIPs in use under one 3-digit prefix
_STREETS_PER_ZIP = (30, 90)


class _Geography:
    """Regions, their ZIPs (skewed: some ZIPs much busier) and each ZIP's streets."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self.regions = _REGIONS
        self._zips: dict[str, _Picker] = {}
        for region in _REGIONS:
            pairs: list[tuple[str, float]] = []
            for zip3 in region.zip3s:
                busy = rng.uniform(0.5, 1.5)
                endings = rng.sample(range(1, 100), _randint(rng, *_ZIPS_PER_ZIP3))
                pairs += [
                    (f"{zip3}{end:02d}", busy / (k + 1) ** 0.6) for k, end in enumerate(endings)
                ]
            self._zips[region.name] = _picker([(pairs, 1.0)])
        self._region_weights: dict[str, tuple[float, ...]] = {}
        for group in ("hispanic", "asian", "other"):
            weights = (r.weight * _group_factor(r, group) for r in _REGIONS)
            self._region_weights[group] = tuple(accumulate(weights))
        self._streets: dict[str, tuple[str, ...]] = {}
        self._street_namers = (
            _picker([(_faker_list("en_US", "last_names"), 1.0)]),
            _picker([(_faker_list("en_US", "first_names_male"), 1.0)]),
            _picker([(_uniform(_COMMON_STREET_NAMES), 1.0)]),
        )
        self._suffixes, self._suffix_cumulative = _street_suffixes_with_weights()

    def region(self, group: str) -> _Region:
        cumulative = self._region_weights[group]
        return self.regions[bisect_right(cumulative, self._rng.random() * cumulative[-1])]

    def postal_code(self, region: _Region) -> str:
        return self._zips[region.name].pick(self._rng)

    def street(self, postal_code: str) -> str:
        streets = self._streets.get(postal_code)
        if streets is None:
            streets = tuple(
                self._new_street() for _ in range(_randint(self._rng, *_STREETS_PER_ZIP))
            )
            self._streets[postal_code] = streets
        return _choice(self._rng, streets)

    def _new_street(self) -> str:
        rng = self._rng
        draw = rng.random()
        if draw < 0.12:
            number = _randint(rng, 1, 60)
            name = f"{number}{_ordinal_suffix(number)}"
        elif draw < 0.35:
            name = self._street_namers[2].pick(rng)
        elif draw < 0.8:
            name = self._street_namers[0].pick(rng)
        else:
            name = self._street_namers[1].pick(rng)
        suffix = self._suffixes[
            bisect_right(self._suffix_cumulative, rng.random() * self._suffix_cumulative[-1])
        ]
        return f"{name} {_USPS_SUFFIXES.get(suffix, suffix)}"

    def address(self, region: _Region) -> tuple[tuple[str, ...], str]:
        """Address lines as the old plan's standardised records hold them, and the ZIP."""
        rng = self._rng
        postal_code = self.postal_code(region)
        line = f"{_house_number(rng)} {self.street(postal_code)}"
        if rng.random() < UNIT_RATE:
            return (line, f"Apt {_unit_number(rng)}"), postal_code
        return (line,), postal_code

    def phone(self, region: _Region) -> str:
        rng = self._rng
        exchange = _randint(rng, 200, 999)
        if exchange % 100 == 11:  # N11 codes (411, 911...) are not exchanges
            exchange += 1
        return f"{_choice(rng, region.area_codes)}-{exchange}-{_randint(rng, 0, 9999):04d}"


def _street_suffixes_with_weights() -> tuple[tuple[str, ...], tuple[float, ...]]:
    names = tuple(dict.fromkeys(_faker_names_address("en_US", "street_suffixes")))
    weights = (_STREET_SUFFIX_WEIGHTS.get(name, _UNCOMMON_SUFFIX_WEIGHT) for name in names)
    return names, tuple(accumulate(weights))


def _faker_names_address(locale: str, attribute: str) -> list[str]:
    return _names_of(_faker_list(locale, attribute, "address"))


def _group_factor(region: _Region, group: str) -> float:
    if group == "hispanic":
        return region.hispanic
    if group == "asian":
        return region.asian
    return 1.0


def _ordinal_suffix(number: int) -> str:
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _house_number(rng: Random) -> int:
    draw = rng.random()
    if draw < 0.2:
        return _randint(rng, 1, 99)
    if draw < 0.6:
        return _randint(rng, 100, 999)
    if draw < 0.95:
        return _randint(rng, 1000, 9999)
    return _randint(rng, 10000, 29999)


def _unit_number(rng: Random) -> str:
    if rng.random() < 0.7:
        return str(_randint(rng, 1, 40))
    return f"{_randint(rng, 1, 12)}{_choice(rng, 'ABCD')}"


# -- identifiers -----------------------------------------------------------------------------

_SSN_GROUPS, _SSN_SERIALS = 99, 9999
_SSN_SPACE = 898 * _SSN_GROUPS * _SSN_SERIALS  # areas 001-899 except 666
_SSN_HALF_BITS = 15  # the space fits in 30 bits: a Feistel permutation of 30-bit numbers
_SSN_HALF_MASK = (1 << _SSN_HALF_BITS) - 1


class _Ids:
    """Unique valid-looking SSNs (a scrambled counter) and this plan's member numbers."""

    def __init__(self, rng: Random) -> None:
        self._ssn_keys = tuple(rng.getrandbits(32) for _ in range(4))
        self._ssn_count = 0
        self._next_member = _randint(rng, 100_000_000, 300_000_000)
        self._next_late_member = self._next_member + 600_000_000  # later enrolment runs

    def ssn(self) -> str:
        index = self._scramble(self._ssn_count)
        while index >= _SSN_SPACE:  # cycle-walk back into the space: still a permutation
            index = self._scramble(index)
        self._ssn_count += 1
        area, rest = divmod(index, _SSN_GROUPS * _SSN_SERIALS)
        group, serial = divmod(rest, _SSN_SERIALS)
        return _format_ssn(area + 1 + (area + 1 >= 666), group + 1, serial + 1)

    def _scramble(self, number: int) -> int:
        """A keyed bijection of 30-bit numbers: people enrolled together get unrelated SSNs."""
        left, right = number >> _SSN_HALF_BITS, number & _SSN_HALF_MASK
        for key in self._ssn_keys:
            mixed = ((right * 0x9E3779B1) ^ key) & 0xFFFFFFFF
            left, right = right, left ^ ((mixed ^ (mixed >> 15)) & _SSN_HALF_MASK)
        return (left << _SSN_HALF_BITS) | right

    def member_numbers(self, count: int, rng: Random) -> list[int]:
        """A household's numbers: consecutive, then a gap before the next household."""
        first = self._next_member
        self._next_member += count + rng.randrange(0, 4)
        return list(range(first, first + count))

    def late_member_number(self, rng: Random) -> int:
        self._next_late_member += 1 + rng.randrange(0, 40)
        return self._next_late_member


def _format_ssn(area: int, group: int, serial: int) -> str:
    return f"{area:03d}-{group:02d}-{serial:04d}"


def _valid_ssn(ssn: str) -> bool:
    area, group, serial = (int(part) for part in ssn.split("-"))
    return 1 <= area <= 899 and area != 666 and group >= 1 and serial >= 1


def _member_id(number: int) -> str:
    return f"{PLAN_PREFIX}{number:09d}"


# -- people and households -------------------------------------------------------------------


@dataclass(slots=True)
class _Person:
    """The truth about a person: what the records and the requests are noisy views of."""

    given: tuple[str, ...]  # first given name (possibly compound), then middle names
    family: str  # as the old plan's record holds it
    birth_surname: str  # paternal surname, or the maiden name of someone who took another
    maternal: str | None  # Hispanic second surname
    sex: str
    birth: tuple[int, int, int]
    role: str  # subscriber, spouse, child, parent
    ssn: str | None = None
    phone: str = ""
    suffix: str | None = None


@dataclass(slots=True)
class _Household:
    number: int
    culture: _Culture
    region: _Region
    address_lines: tuple[str, ...]
    postal_code: str
    phone: str
    people: list[_Person]
    member_ids: list[str] = field(default_factory=list)

    @property
    def subscriber_member_id(self) -> str:
        return self.member_ids[0]

    @property
    def has_spouse(self) -> bool:
        return any(person.role == "spouse" for person in self.people)


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _birth_in(rng: Random, year: int) -> tuple[int, int, int]:
    month = _randint(rng, 1, 6 if year >= REFERENCE_YEAR else 12)
    return year, month, _randint(rng, 1, _days_in_month(year, month))


_DATE_TEXTS: dict[tuple[int, int, int], str] = {}  # a century of days: formatted once each


def _format_date(birth: tuple[int, int, int]) -> str:
    text = _DATE_TEXTS.get(birth)
    if text is None:
        text = _DATE_TEXTS[birth] = f"{birth[0]:04d}-{birth[1]:02d}-{birth[2]:02d}"
    return text


@cache
def _adult_years() -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Subscribers' birth years: flat for 1960-2005, thinning toward 1935 (fewer old adults)."""
    years = tuple(range(OLDEST_ADULT_YEAR, YOUNGEST_ADULT_YEAR + 1))
    weights = (1.0 if year >= 1960 else 0.2 + 0.8 * (year - 1935) / 25 for year in years)
    return years, tuple(accumulate(weights))


def _adult_year(rng: Random) -> int:
    years, cumulative = _adult_years()
    return years[bisect_right(cumulative, rng.random() * cumulative[-1])]


def _other_sex(sex: str) -> str:
    return "female" if sex == "male" else "male"


def _random_sex(rng: Random) -> str:
    return "male" if rng.random() < 0.51 else "female"


def _first_name(rng: Random, culture: _Culture, sex: str, english_rate: float) -> tuple[str, bool]:
    """A first name, and whether it is an English one given instead of a heritage name."""
    if english_rate and rng.random() < english_rate:
        anglo = _cultures()[0]
        return (anglo.male if sex == "male" else anglo.female).pick(rng), True
    pool = culture.male if sex == "male" else culture.female
    if culture.compound is not None and rng.random() < culture.compound_rate:
        return culture.compound(rng, sex, pool), False
    return pool.pick(rng), False


def _middle_name(rng: Random, culture: _Culture, sex: str, first: str, heritage: bool) -> str:
    if heritage:
        return (culture.male if sex == "male" else culture.female).pick(rng)
    if culture.middle_from_surnames:
        return culture.surnames.pick(rng)
    special = culture.middle_male if sex == "male" else culture.middle_female
    pool = special or (culture.male if sex == "male" else culture.female)
    middle = pool.pick(rng)
    return middle if middle != first else pool.pick(rng)


def _given_names(
    rng: Random, culture: _Culture, sex: str, *, child: bool, avoid: set[str] | None = None
) -> tuple[str, ...]:
    english_rate = culture.english_first_child if child else culture.english_first_adult
    first, english = _first_name(rng, culture, sex, english_rate)
    for _ in range(8):  # siblings do not share a first name
        if avoid is None or first not in avoid:
            break
        first, english = _first_name(rng, culture, sex, english_rate)
    heritage_middle = english and culture.heritage_middle and rng.random() < 0.7
    if not heritage_middle and rng.random() >= culture.middle_rate:
        return (first,)
    middle = _middle_name(rng, culture, sex, first, heritage_middle)
    if rng.random() < RECORD_MIDDLE_INITIAL_RATE:
        middle = middle[0]
    return first, middle


def _surnames(rng: Random, culture: _Culture) -> tuple[str, str | None]:
    """A birth surname and, for double-surname cultures, the maternal one."""
    paternal = culture.surnames.pick(rng)
    if not culture.double_surname_rate:
        return paternal, None
    maternal = culture.surnames.pick(rng)
    return paternal, (maternal if maternal != paternal else culture.surnames.pick(rng))


def _recorded_family(rng: Random, culture: _Culture, paternal: str, maternal: str | None) -> str:
    if maternal and rng.random() < culture.double_surname_rate:
        return f"{paternal} {maternal}"
    return paternal


def _adult(rng: Random, culture: _Culture, sex: str, year: int, role: str) -> _Person:
    paternal, maternal = _surnames(rng, culture)
    return _Person(
        given=_given_names(rng, culture, sex, child=False),
        family=_recorded_family(rng, culture, paternal, maternal),
        birth_surname=paternal,
        maternal=maternal,
        sex=sex,
        birth=_birth_in(rng, year),
        role=role,
    )


def _marry(rng: Random, culture: _Culture, wife: _Person, husband: _Person) -> None:
    """The wife's record keeps her name, takes her husband's, or hyphenates the two."""
    draw = rng.random()
    if draw < culture.spouse_keeps_surname_rate:
        return
    if draw < culture.spouse_keeps_surname_rate + HYPHENATED_SPOUSE_RATE:
        wife.family = f"{wife.birth_surname}-{husband.birth_surname}"
    else:
        wife.family = husband.birth_surname


def _new_people(rng: Random, culture: _Culture) -> list[_Person]:
    """One household's people, subscriber first."""
    shape = _weighted_choice(rng, HOUSEHOLD_SHAPES)
    subscriber = _adult(rng, culture, _random_sex(rng), _adult_year(rng), "subscriber")
    people = [subscriber]
    father = subscriber if subscriber.sex == "male" else None
    mother = subscriber if subscriber.sex == "female" else None
    if shape in ("couple", "family"):
        same_sex = rng.random() < SAME_SEX_COUPLE_RATE
        sex = subscriber.sex if same_sex else _other_sex(subscriber.sex)
        age_gap = round(rng.gauss(0, 3)) + (0 if same_sex else (-2 if sex == "male" else 2))
        year = min(max(subscriber.birth[0] + age_gap, OLDEST_ADULT_YEAR), YOUNGEST_ADULT_YEAR)
        spouse = _adult(rng, culture, sex, year, "spouse")
        people.append(spouse)
        if same_sex:
            if rng.random() < 0.4:
                spouse.family = subscriber.birth_surname
        else:
            father, mother = (spouse, subscriber) if sex == "male" else (subscriber, spouse)
            _marry(rng, culture, mother, father)
    if shape in ("family", "single_parent"):
        people += _children(rng, culture, people, father, mother)
    if rng.random() < GRANDPARENT_RATE:
        people.append(_grandparent(rng, culture, subscriber))
    return people


def _children(
    rng: Random,
    culture: _Culture,
    parents: list[_Person],
    father: _Person | None,
    mother: _Person | None,
) -> list[_Person]:
    parent_years = [parent.birth[0] for parent in parents]
    earliest = max(REFERENCE_YEAR - DEPENDENT_CHILD_MAX_AGE, max(parent_years) + 18)
    latest = min(REFERENCE_YEAR, min(parent_years) + 45)
    if earliest > latest:
        return []
    paternal = (father or parents[0]).birth_surname
    maternal = mother.birth_surname if father is not None and mother is not None else None
    if father is None:
        if rng.random() < SINGLE_PARENT_OTHER_SURNAME_RATE:
            paternal = culture.surnames.pick(rng)  # the absent father's name
            maternal = parents[0].birth_surname
        else:  # a single mother's children carry both her surnames
            maternal = parents[0].maternal
    if not culture.double_surname_rate:
        maternal = None
    count = _weighted_choice(rng, CHILD_COUNTS)
    children: list[_Person] = []
    names_taken = {parent.given[0] for parent in parents}
    births_taken: set[tuple[int, int, int]] = set()
    while len(children) < count:
        twins = rng.random() < TWIN_BIRTH_RATE  # a twin birth adds a child to the plan
        birth = _birth_in(rng, _randint(rng, earliest, latest))
        if birth in births_taken:
            continue  # only twins share a birthday
        births_taken.add(birth)
        sex = _random_sex(rng)
        for twin_index in range(2 if twins else 1):
            if twin_index and rng.random() >= TWINS_SAME_SEX_RATE:
                sex = _random_sex(rng)
            given = _given_names(rng, culture, sex, child=True, avoid=names_taken)
            names_taken.add(given[0])
            children.append(
                _Person(
                    given=given,
                    family=_recorded_family(rng, culture, paternal, maternal),
                    birth_surname=paternal,
                    maternal=maternal,
                    sex=sex,
                    birth=birth,
                    role="child",
                )
            )
    if father is not None and rng.random() < NAMESAKE_SON_RATE:
        _name_son_after_father(rng, children, father)
    return children


def _name_son_after_father(rng: Random, children: list[_Person], father: _Person) -> None:
    son = next((child for child in children if child.sex == "male"), None)
    if son is None or any(child.given[0] == father.given[0] for child in children):
        return
    son.given = father.given
    son.family = father.birth_surname
    son.suffix = "Jr"
    if rng.random() < FATHER_SR_RATE:
        father.suffix = "Sr"


def _grandparent(rng: Random, culture: _Culture, subscriber: _Person) -> _Person:
    sex = _random_sex(rng)
    year = max(subscriber.birth[0] - _randint(rng, 20, 38), OLDEST_GRANDPARENT_YEAR)
    parent = _adult(rng, culture, sex, year, "parent")
    if sex == "male" or rng.random() < 0.6:  # the subscriber's father, or a mother with his name
        parent.family = subscriber.birth_surname
        if sex == "male":
            parent.birth_surname = subscriber.birth_surname
    return parent


class _Builder:
    """Households of one culture each, their people's identifiers and phones."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.geo = _Geography(rng)
        self.ids = _Ids(rng)
        cultures = _cultures()
        self._cultures = cultures
        self._culture_cumulative = tuple(accumulate(culture.share for culture in cultures))

    def culture(self) -> _Culture:
        draw = self.rng.random() * self._culture_cumulative[-1]
        return self._cultures[bisect_right(self._culture_cumulative, draw)]

    def household(self, number: int) -> _Household:
        rng = self.rng
        culture = self.culture()
        region = self.geo.region(culture.group)
        lines, postal_code = self.geo.address(region)
        household = _Household(
            number=number,
            culture=culture,
            region=region,
            address_lines=lines,
            postal_code=postal_code,
            phone=self.geo.phone(region),
            people=_new_people(rng, culture),
        )
        for person in household.people:
            self.equip(person, household)
        return household

    def equip(self, person: _Person, household: _Household) -> None:
        """The person's own SSN and current phone."""
        rng = self.rng
        child = person.role == "child"
        if not (child and rng.random() < CHILD_WITHOUT_SSN_RATE):
            person.ssn = self.ids.ssn()
        adult = REFERENCE_YEAR - person.birth[0] >= 18
        own_cell = adult and rng.random() < OWN_CELL_RATE
        person.phone = self.geo.phone(household.region) if own_cell else household.phone


def _enroll(rng: Random, household: _Household, ids: _Ids) -> list[dict[str, Any]]:
    """The old plan's member records of one household."""
    numbers = ids.member_numbers(len(household.people), rng)
    subscriber = household.people[0]
    records: list[dict[str, Any]] = []
    for index, (person, number) in enumerate(zip(household.people, numbers, strict=True)):
        if index and rng.random() < LATE_DEPENDENT_RATE:
            number = ids.late_member_number(rng)
        household.member_ids.append(_member_id(number))
        records.append(_member_record(rng, person, household, subscriber, index == 0))
    return records


def _member_record(
    rng: Random, person: _Person, household: _Household, subscriber: _Person, is_subscriber: bool
) -> dict[str, Any]:
    record: dict[str, Any] = {"given": list(person.given), "family": person.family}
    if person.suffix:
        record["suffixes"] = [person.suffix]
    record["birth_date"] = _format_date(person.birth)
    if rng.random() >= RECORD_SEX_MISSING_RATE:
        record["sex"] = person.sex
    record["address_lines"] = list(household.address_lines)
    record["postal_code"] = household.postal_code
    if rng.random() >= RECORD_PHONE_MISSING_RATE:
        record["phone"] = person.phone
    record["member_id"] = household.member_ids[-1]
    record["subscriber_id"] = household.subscriber_member_id
    adult = REFERENCE_YEAR - person.birth[0] >= 18
    if is_subscriber or (adult and person.role != "child"):
        if person.ssn and rng.random() < ADULT_SSN_ON_FILE_RATE:
            record["ssn"], record["ssn_carried"] = person.ssn, False
        return record
    draw = rng.random()
    if subscriber.ssn and draw < DEPENDENT_SSN_CARRIED_RATE:
        record["ssn"], record["ssn_carried"] = subscriber.ssn, True
    elif person.ssn and draw < DEPENDENT_SSN_CARRIED_RATE + DEPENDENT_SSN_ON_FILE_RATE:
        record["ssn"], record["ssn_carried"] = person.ssn, False
    return record


# -- corruption helpers ----------------------------------------------------------------------

_ASCII_LOOKALIKES = str.maketrans(  # letters and marks NFKD does not take apart
    {"đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "œ": "oe"}
    | {"\u2019": "'", "\u2018": "'"}  # D’Alia: a typographic apostrophe
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _without_accents(text: str) -> str:
    """What systems that only store ASCII make of a name: marks gone, letters kept."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_LOOKALIKES))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _typo(rng: Random, name: str) -> str | None:
    """One keying error: a letter inserted, deleted, replaced, or two swapped. None if too short.

    The first letter is rarely wrong (people check it), so errors fall after it.
    """
    if len(name) < 3:
        return None
    position = rng.randrange(1, len(name))
    letters = _LETTERS.upper() if name.isupper() else _LETTERS
    kind = rng.randrange(4)
    if kind == 0:
        return name[:position] + _choice(rng, letters) + name[position:]
    if kind == 1:
        return name[:position] + name[position + 1 :]
    if kind == 3 and position < len(name) - 1 and name[position] != name[position + 1]:
        return name[:position] + name[position + 1] + name[position] + name[position + 2 :]
    replacement = _choice(
        rng, letters.replace(name[position].lower(), "").replace(name[position], "")
    )
    return name[:position] + replacement + name[position + 1 :]


def _nickname(rng: Random, first: str) -> str | None:
    """A nickname for a formal name, or the formal name for a nickname; None if neither."""
    for key in (first, _without_accents(first)):
        if key in _NICKNAMES:
            return _choice(rng, _NICKNAMES[key])
        if key in _FORMAL_NAMES:
            return _choice(rng, _FORMAL_NAMES[key])
    return None


def _one_digit_wrong(rng: Random, text: str, positions: Sequence[int]) -> str:
    position = _choice(rng, positions)
    digit = _choice(rng, "0123456789".replace(text[position], ""))
    return text[:position] + digit + text[position + 1 :]


def _member_id_typo(rng: Random, member_id: str) -> str:
    return _one_digit_wrong(rng, member_id, range(len(PLAN_PREFIX), len(member_id)))


def _ssn_typo(rng: Random, ssn: str) -> str:
    digits = [i for i, char in enumerate(ssn) if char.isdigit()]
    for _ in range(10):
        if rng.random() < 0.3:  # two neighbouring digits swapped
            i = rng.randrange(len(digits) - 1)
            a, b = digits[i], digits[i + 1]
            wrong = ssn[:a] + ssn[b] + ssn[a + 1 : b] + ssn[a] + ssn[b + 1 :]
        else:
            wrong = _one_digit_wrong(rng, ssn, digits)
        if wrong != ssn and _valid_ssn(wrong):
            return wrong
    return _one_digit_wrong(rng, ssn, digits[-4:])


def _adjacent_ssn(ssn: str) -> str:
    area, group, serial = (int(part) for part in ssn.split("-"))
    return _format_ssn(area, group, serial + 1 if serial < 9999 else serial - 1)


def _valid_date(year: int, month: int, day: int) -> bool:
    return (
        1900 <= year <= REFERENCE_YEAR
        and 1 <= month <= 12
        and 1 <= day <= _days_in_month(year, month)
    )


def _dob_event(rng: Random, birth: tuple[int, int, int]) -> tuple[tuple[int, int, int], str | None]:
    """At most one birth-date error (``DOB_EVENTS``); the label is None when none applies."""
    draw = rng.random()
    year, month, day = birth
    for label, rate in DOB_EVENTS:
        if draw >= rate:
            draw -= rate
            continue
        changed: tuple[int, int, int] | None = None
        if label == "dob_day_01" and day != 1:
            changed = (year, month, 1)
        elif label == "dob_month_day_0101" and (month, day) != (1, 1):
            changed = (year, 1, 1)
        elif label == "dob_digit_typo":
            changed = _dob_digit_typo(rng, birth)
        elif label == "dob_day_month_swapped" and day <= 12 and day != month:
            changed = (year, day, month)
        elif label == "dob_year_off_by_one":
            new_year = year + _choice(rng, (-1, 1))
            if new_year > REFERENCE_YEAR:
                new_year = year - 1
            changed = (new_year, month, min(day, _days_in_month(new_year, month)))
        return (changed, label) if changed else (birth, None)
    return birth, None


def _dob_digit_typo(rng: Random, birth: tuple[int, int, int]) -> tuple[int, int, int] | None:
    text = f"{birth[0]:04d}{birth[1]:02d}{birth[2]:02d}"
    for _ in range(10):  # the century is rarely mistyped; the result must still be a date
        wrong = _one_digit_wrong(rng, text, range(2, 8))
        year, month, day = int(wrong[:4]), int(wrong[4:6]), int(wrong[6:])
        if _valid_date(year, month, day):
            return year, month, day
    return None


def _reformatted_address(rng: Random, lines: Sequence[str]) -> list[str]:
    """The same address keyed another way: the full street word, "#" for "Apt", one line."""
    street, *units = lines
    words = street.split(" ")
    if words[-1] in _FULL_SUFFIXES and (not units or rng.random() < 0.5):
        words[-1] = _FULL_SUFFIXES[words[-1]]
    street = " ".join(words)
    if not units:
        return [street]
    unit = units[0]
    number = unit.split(" ", 1)[1]
    unit = f"{_choice(rng, _UNIT_WORDS)} {number}" if rng.random() < 0.6 else unit
    if rng.random() < 0.5:
        return [f"{street} {unit}"]
    return [street, unit]


# -- requests --------------------------------------------------------------------------------


def _age(person: _Person) -> int:
    return REFERENCE_YEAR - person.birth[0]


@dataclass(slots=True)
class _Names:
    """A request's names while the events are applied to them."""

    first: str
    middles: list[str]
    family: str
    previous: list[str] | None = None
    suffix: str | None = None

    def given(self) -> list[str]:
        return [self.first, *self.middles]


def _surname_events(
    rng: Random, names: _Names, person: _Person, culture: _Culture, labels: list[str]
) -> None:
    age = _age(person)
    married_rate = MARRIED_FEMALE_RATE if person.sex == "female" else MARRIED_MALE_RATE
    if MARRIED_MIN_AGE <= age <= MARRIED_MAX_AGE and rng.random() < married_rate:
        pool = culture if rng.random() < MARRIED_OWN_CULTURE_RATE else _cultures()[0]
        new = pool.surnames.pick(rng)
        if new != names.family:
            if rng.random() < MAIDEN_AS_PREVIOUS_RATE:
                names.previous = [names.family]
            names.family = new
            labels.append("married")
            return
    if age >= MARRIED_MIN_AGE and rng.random() < HYPHENATED_RATE:
        names.family = _hyphenated(rng, person, names.family)
        labels.append("hyphenated")


def _hyphenated(rng: Random, person: _Person, family: str) -> str:
    """Two surnames where the record has one, or one where it has two."""
    for separator in ("-", " "):
        if separator in family:
            first, _, second = family.partition(separator)
            return _choice(
                rng, (first, second, f"{first}{'-' if separator == ' ' else ' '}{second}")
            )
    separator = _choice(rng, ("-", " "))
    if person.maternal:
        return f"{family}{separator}{person.maternal}"
    if person.birth_surname != family:  # took a spouse's name: maiden name first
        return f"{person.birth_surname}{separator}{family}"
    return f"{family}-{_cultures()[0].surnames.pick(rng)}"  # married and joined the names


def _given_name_events(rng: Random, names: _Names, person: _Person, labels: list[str]) -> None:
    if rng.random() < NICKNAME_RATE:
        nickname = _nickname(rng, names.first)
        if nickname:
            names.first = nickname
            labels.append("nickname")
    full_middles = [middle for middle in person.given[1:] if len(middle) > 1]
    if full_middles and rng.random() < MIDDLE_AS_FIRST_RATE:
        # goes by the middle name: "J. Robert Smith" or just "Robert Smith"
        names.middles = []
        if rng.random() < 0.4:
            names.middles = [full_middles[0]]
            names.first = names.first[0]
        else:
            names.first = full_middles[0]
        labels.append("middle_as_first")
    elif rng.random() < INITIAL_ONLY_RATE:
        names.first = names.first[0]
        labels.append("initial_only")
    if (" " in names.first or "-" in names.first) and rng.random() < COMPOUND_NAME_RATE:
        _compound_variant(rng, names)
        labels.append("compound_name")


def _compound_variant(rng: Random, names: _Names) -> None:
    """ "María José" keyed as first and middle, hyphenated, joined, or cut to "María"."""
    separator = " " if " " in names.first else "-"
    head, _, tail = names.first.partition(separator)
    choice = rng.randrange(4)
    if choice == 0:
        names.first, names.middles = head, [tail, *names.middles]
    elif choice == 1:
        names.first = f"{head}{'-' if separator == ' ' else ' '}{tail}"
    elif choice == 2:
        names.first = f"{head}{tail.lower()}"
    else:
        names.first = head


def _request_middles(rng: Random, middles: list[str]) -> list[str]:
    """The new plan's form holds the middle name, its initial, or nothing."""
    if not middles:
        return middles
    draw = rng.random()
    if draw < REQUEST_MIDDLE_FULL_RATE:
        return middles
    if draw < REQUEST_MIDDLE_FULL_RATE + REQUEST_MIDDLE_INITIAL_RATE:
        return [middle[0] for middle in middles]
    return []


def _keying_events(rng: Random, names: _Names, labels: list[str]) -> None:
    if rng.random() < NAMES_SWAPPED_RATE:
        names.first, names.family, names.middles = names.family, names.first, []
        labels.append("names_swapped")
    if rng.random() < GIVEN_TYPO_RATE:
        wrong = _typo(rng, names.first)
        if wrong:
            names.first = wrong
            labels.append("given_typo")
    if rng.random() < FAMILY_TYPO_RATE:
        wrong = _typo(rng, names.family)
        if wrong:
            names.family = wrong
            labels.append("family_typo")


def _formatting_events(rng: Random, names: _Names, labels: list[str]) -> None:
    if names.suffix and rng.random() < SUFFIX_DROPPED_RATE:
        names.suffix = None
        labels.append("suffix_dropped")
    texts = "".join((names.first, *names.middles, names.family, *(names.previous or ())))
    if not texts.isascii() and rng.random() < ACCENTS_DROPPED_RATE:
        _map_names(names, _without_accents)
        labels.append("accents_dropped")
    if rng.random() < UPPERCASE_RATE:
        _map_names(names, str.upper)
        labels.append("uppercase")


def _map_names(names: _Names, change: Callable[[str], str]) -> None:
    names.first = change(names.first)
    names.middles = [change(middle) for middle in names.middles]
    names.family = change(names.family)
    if names.previous:
        names.previous = [change(previous) for previous in names.previous]


@dataclass(frozen=True, slots=True)
class _Contact:
    """Where a request says the person lives."""

    address_lines: Sequence[str] | None
    postal_code: str | None
    phone: str | None


def _request(
    names: _Names,
    birth: tuple[int, int, int],
    sex: str | None,
    contact: _Contact,
    card: Mapping[str, str],
    ssn: str | None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"given": names.given(), "family": names.family}
    if names.previous:
        request["previous_families"] = names.previous
    if names.suffix:
        request["suffixes"] = [names.suffix]
    request["birth_date"] = _format_date(birth)
    if sex:
        request["sex"] = sex
    if contact.address_lines:
        request["address_lines"] = list(contact.address_lines)
    if contact.postal_code:
        request["postal_code"] = contact.postal_code
    if contact.phone:
        request["phone"] = contact.phone
    request.update(card)
    if ssn:
        request["ssn"] = ssn
    return request


def _omissions(
    rng: Random, person: _Person, contact: _Contact, labels: list[str], *, address: bool = True
) -> tuple[str | None, _Contact, str | None]:
    """Sex, contact details and SSN as the new plan's request carries them."""
    sex: str | None = person.sex
    if rng.random() < NO_SEX_RATE:
        sex = None
        labels.append("no_sex")
    if address and rng.random() < NO_ADDRESS_RATE:
        contact = _Contact(None, None, contact.phone)
        labels.append("no_address")
    if rng.random() < NO_PHONE_RATE:
        contact = _Contact(contact.address_lines, contact.postal_code, None)
        labels.append("no_phone")
    ssn = person.ssn
    if ssn is None or rng.random() < NO_SSN_RATE:
        ssn = None
        labels.append("no_ssn")
    elif rng.random() < SSN_TYPO_RATE:
        ssn = _ssn_typo(rng, ssn)
        labels.append("ssn_typo")
    return sex, contact, ssn


class _Requests:
    """Member-match requests about members, relatives and strangers."""

    def __init__(
        self,
        builder: _Builder,
        households: list[_Household],
        records: list[dict[str, Any]],
        member_people: list[_Person],
        member_home: list[int],
    ) -> None:
        self.rng = builder.rng
        self.builder = builder
        self.households = households
        self.records = records
        self.people = member_people
        self.home = member_home

    # -- about a member

    def about_member(self, index: int) -> tuple[dict[str, Any], tuple[str, ...]]:
        rng = self.rng
        person = self.people[index]
        household = self.households[self.home[index]]
        labels: list[str] = []
        names = _Names(person.given[0], list(person.given[1:]), person.family, None, person.suffix)
        _surname_events(rng, names, person, household.culture, labels)
        names.middles = _request_middles(rng, names.middles)
        _given_name_events(rng, names, person, labels)
        _keying_events(rng, names, labels)
        _formatting_events(rng, names, labels)
        birth, dob_label = _dob_event(rng, person.birth)
        if dob_label:
            labels.append(dob_label)
        moved = rng.random() < MOVED_RATE
        contact = self._moved(person, household) if moved else self._home(person, household)
        if moved:
            labels.append("moved")
        elif rng.random() < ADDRESS_FORMAT_RATE and contact.address_lines:
            contact = _Contact(
                _reformatted_address(rng, contact.address_lines), contact.postal_code, contact.phone
            )
            labels.append("address_format")
        sex, contact, ssn = _omissions(rng, person, contact, labels)
        card_label, card = self._member_card(index, household, moved)
        labels.append(card_label)
        return _request(names, birth, sex, contact, card, ssn), tuple(labels)

    def _home(self, person: _Person, household: _Household) -> _Contact:
        return _Contact(household.address_lines, household.postal_code, person.phone)

    def _moved(self, person: _Person, household: _Household) -> _Contact:
        rng, geo = self.rng, self.builder.geo
        region = household.region
        if rng.random() < MOVED_OTHER_REGION_RATE:
            region = geo.region(household.culture.group)
        lines, postal_code = geo.address(region)
        while lines[0] == household.address_lines[0]:
            lines, postal_code = geo.address(region)
        phone = geo.phone(region) if rng.random() < MOVED_NEW_PHONE_RATE else person.phone
        return _Contact(lines, postal_code, phone)

    def _member_card(
        self, index: int, household: _Household, moved: bool
    ) -> tuple[str, dict[str, str]]:
        rng = self.rng
        if moved and rng.random() < MOVED_NO_CARD_RATE:
            return "card:none", {}
        label = _weighted_choice(rng, CARD_SHARES)
        member_id: str = self.records[index]["member_id"]
        subscriber_id = household.subscriber_member_id
        is_subscriber = member_id == subscriber_id
        with_subscriber = rng.random() < CARD_WITH_SUBSCRIBER_ID_RATE
        if label == "card:subscriber_card" and is_subscriber:
            label = "card:member_id"
        if label == "card:none":
            return label, {}
        if label == "card:subscriber_id_only":
            return label, {"subscriber_id": subscriber_id}
        if label == "card:member_id_typo":
            member_id = _member_id_typo(rng, member_id)
        elif label == "card:subscriber_card":
            member_id = subscriber_id
        card = {"member_id": member_id}
        if with_subscriber:
            card["subscriber_id"] = subscriber_id
        return label, card

    # -- about people not on the plan

    def stranger(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Someone from a household that never had this plan."""
        household = self.builder.household(-1)
        person = _choice(self.rng, household.people)
        labels = ["non_member", "card:none"]  # this plan's card they never had
        return self._non_member_request(person, household, labels, {}), tuple(labels)

    def relative(self, kind: str) -> tuple[dict[str, Any], tuple[str, ...], int] | None:
        """A relative of a member who never enrolled, at the member's address; None if no
        member fits (tiny populations)."""
        make = {
            "twin": self._twin,
            "sibling": self._sibling,
            "parent_namesake": self._parent_namesake,
            "spouse_not_enrolled": self._spouse,
        }[kind]
        for _ in range(ANCHOR_TRIES):
            index = self.rng.randrange(len(self.people))
            relative = make(self.people[index], self.households[self.home[index]])
            if relative is None:
                continue
            household = self.households[self.home[index]]
            self.builder.equip(relative, household)
            labels = ["non_member", f"relative:{kind}"]
            card_label = _weighted_choice(self.rng, RELATIVE_CARD_SHARES)
            labels.append(card_label)
            card = self._household_card(card_label, household)
            member_ssn = self.people[index].ssn
            twin_ssn = kind == "twin" and member_ssn and relative.ssn
            if twin_ssn and self.rng.random() < TWIN_ADJACENT_SSN_RATE:
                relative.ssn = _adjacent_ssn(member_ssn or "")
            request = self._non_member_request(relative, household, labels, card)
            return request, tuple(labels), household.number
        return None

    def _household_card(self, label: str, household: _Household) -> dict[str, str]:
        subscriber_id = household.subscriber_member_id
        if label == "card:subscriber_id_only":
            return {"subscriber_id": subscriber_id}
        if label == "card:subscriber_card":
            return {"member_id": subscriber_id, "subscriber_id": subscriber_id}
        return {}

    def _non_member_request(
        self, person: _Person, household: _Household, labels: list[str], card: dict[str, str]
    ) -> dict[str, Any]:
        rng = self.rng
        names = _Names(person.given[0], list(person.given[1:]), person.family, None, person.suffix)
        names.middles = _request_middles(rng, names.middles)
        contact = self._home(person, household)
        sex, contact, ssn = _omissions(rng, person, contact, labels, address=False)
        return _request(names, person.birth, sex, contact, card, ssn)

    def _fresh_given(self, household: _Household, sex: str, child: bool) -> tuple[str, ...]:
        taken = {member.given[0] for member in household.people}
        taken |= {_without_accents(name) for name in taken}
        for _ in range(10):
            given = _given_names(self.rng, household.culture, sex, child=child, avoid=taken)
            if given[0] not in taken and _nickname_of(given[0]).isdisjoint(taken):
                return given
        return (f"{given[0]}a" if sex == "female" else f"{given[0]}o", *given[1:])

    def _twin(self, member: _Person, household: _Household) -> _Person | None:
        if _age(member) > 30 and self.rng.random() < 0.9:  # twins at home are mostly young
            return None
        sex = member.sex if self.rng.random() < TWINS_SAME_SEX_RATE else _random_sex(self.rng)
        return self._relative_like(member, household, sex, member.birth, "child")

    def _sibling(self, member: _Person, household: _Household) -> _Person | None:
        if _age(member) > 30:
            return None
        rng = self.rng
        for _ in range(5):
            year = member.birth[0] + _choice(rng, (-1, 1)) * _randint(rng, 1, 8)
            if year <= REFERENCE_YEAR:
                birth = _birth_in(rng, year)
                return self._relative_like(member, household, _random_sex(rng), birth, "child")
        return None

    def _parent_namesake(self, member: _Person, household: _Household) -> _Person | None:
        """The member's father, with the member's given name, a generation older."""
        if member.sex != "male" or _age(member) > 50 or member.suffix:
            return None
        first = member.given[0]
        if any(p.given[0] == first and p is not member for p in household.people):
            return None  # his father is on the plan already (a Jr/Sr household)
        year = max(member.birth[0] - _randint(self.rng, 20, 40), OLDEST_GRANDPARENT_YEAR)
        given = _given_names(self.rng, household.culture, "male", child=False)
        father = self._relative_like(member, household, "male", _birth_in(self.rng, year), "parent")
        father.given = (first, *given[1:])
        return father

    def _spouse(self, member: _Person, household: _Household) -> _Person | None:
        if member.role != "subscriber" or household.has_spouse or _age(member) < 20:
            return None
        rng = self.rng
        same_sex = rng.random() < SAME_SEX_COUPLE_RATE
        sex = member.sex if same_sex else _other_sex(member.sex)
        year = member.birth[0] + round(rng.gauss(0, 3))
        year = min(max(year, OLDEST_GRANDPARENT_YEAR), REFERENCE_YEAR - 18)
        return self._relative_like(member, household, sex, _birth_in(rng, year), "spouse")

    def _relative_like(
        self,
        member: _Person,
        household: _Household,
        sex: str,
        birth: tuple[int, int, int],
        role: str,
    ) -> _Person:
        """Someone of the member's family: same surname, their own given name and birth."""
        return _Person(
            given=self._fresh_given(household, sex, child=role == "child"),
            family=member.family,
            birth_surname=member.birth_surname,
            maternal=member.maternal,
            sex=sex,
            birth=birth,
            role=role,
        )


def _nickname_of(first: str) -> set[str]:
    return {*_NICKNAMES.get(first, ()), *_FORMAL_NAMES.get(first, ())}


# -- the data set ----------------------------------------------------------------------------


def generate_migration_set(
    members: int,
    *,
    seed: int = 7,
    requests: int | None = None,
    non_member_share: float = 0.1,
) -> LinkageSet:
    """A plan's ``members`` and ``requests`` (default: as many) member-match requests."""
    if members < 1:
        raise ValueError("members must be at least 1")
    if not 0.0 <= non_member_share <= 1.0:
        raise ValueError("non_member_share must be between 0 and 1")
    request_count = members if requests is None else requests
    if request_count < 0:
        raise ValueError("requests must not be negative")
    with _collector_paused():
        return _generate(members, Random(seed), request_count, non_member_share)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The data has no reference cycles, so cyclic GC passes over millions of new objects
    only cost time (a fifth of it at a million members)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate(members: int, rng: Random, request_count: int, non_member_share: float) -> LinkageSet:
    builder = _Builder(rng)

    records: list[dict[str, Any]] = []
    households: list[_Household] = []
    member_people: list[_Person] = []
    member_home: list[int] = []
    while len(records) < members:
        household = builder.household(len(households))
        household.people = household.people[: members - len(records)]
        records += _enroll(rng, household, builder.ids)
        member_people += household.people
        member_home += [household.number] * len(household.people)
        households.append(household)

    non_members = round(request_count * non_member_share)
    about_members = request_count - non_members
    relatives = round(non_members * RELATIVE_SHARE_OF_NON_MEMBERS)
    kinds = ["member"] * about_members + ["stranger"] * (non_members - relatives)
    kinds += [RELATIVE_KINDS[k % len(RELATIVE_KINDS)] for k in range(relatives)]
    rng.shuffle(kinds)
    targets = _requested_members(rng, members, about_members)

    maker = _Requests(builder, households, records, member_people, member_home)
    out: list[dict[str, Any]] = []
    truth: list[int] = []
    request_household: list[int] = []
    labels: list[tuple[str, ...]] = []
    next_target = iter(targets)
    for kind in kinds:
        if kind == "member":
            index = next(next_target)
            request, request_labels = maker.about_member(index)
            truth.append(index)
            request_household.append(member_home[index])
        else:
            made = maker.relative(kind) if kind != "stranger" else None
            if made is None:
                request, request_labels = maker.stranger()
                household_number = -1
            else:
                request, request_labels, household_number = made
            truth.append(-1)
            request_household.append(household_number)
        out.append(request)
        labels.append(request_labels)

    return LinkageSet(
        name=f"migration {members:,}",
        members=records,
        requests=out,
        truth=truth,
        member_household=member_home,
        request_household=request_household,
        note=(
            "Independent payer-migration generator: multicultural households from Faker's "
            "locale name lists, member-match requests from switchers with life events "
            "(moves, marriages), card data and data-entry errors, and non-members including "
            "never-enrolled twins, siblings, namesake fathers and spouses at members' addresses."
        ),
        request_labels=labels,
    )


def _requested_members(rng: Random, members: int, count: int) -> list[int]:
    """Members asked about, uniformly: each at most once until every member has been."""
    chosen: list[int] = []
    while len(chosen) < count:
        chosen += rng.sample(range(members), min(members, count - len(chosen)))
    return chosen
