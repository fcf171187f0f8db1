"""Synthetic payer-migration sets for ``bench identity``: members, match requests, ground truth.

``generate_identity_set(members, seed=...)`` takes an old payer's population of
``members`` people in households from the population generator the sandbox uses
(``payerbridge_tools.population``), and builds the match requests a new payer
sends (demographics plus whatever the old card shows), each with the member it
is truly about or ``None``. The same arguments always give the same set.

The population is meant to be hard in the ways real plans are, so it is drawn with a
harder mix than the sandbox's (``MIX``):

* households share surname, street address, ZIP, the landline and the subscriber
  id (the subscriber's member id); spouses and teenagers often have a mobile of
  their own; dependents' records sometimes hold the subscriber's SSN
  (``ssn_carried``), which is this module's addition to the population;
* twins: a child with a sibling of the same birth date and surname and another
  first name (8% of births); Jr/Sr: a son named after his father;
* skewed names, so namesakes are common (a few hundred surnames and given
  names for a million people); members keep their first given name only.

Requests about members depart from the member's record the way forms do (one
independent draw per kind, see ``NOISE``): nicknames, typos in names and card
ids, married or hyphenated surnames (with or without the maiden name), moves,
day/month swaps and digit typos in the birth date, a card that shows the
subscriber's id, and missing member id, subscriber id, SSN, sex or phone.
Requests about non-members are people from households that are not on the
plan, and relatives of members who never enrolled (a twin, a sibling, a
father with the same name as his son), who often show the household's card.

Storage is columnar (``array`` and ``bytearray`` per field, names as indexes
into the vocabulary, street lines once per household, the rare free text from
typos in small dictionaries), so a million members and a million requests take
a few hundred MB at most.
Records are materialised one at a time: ``member_fields`` / ``request_fields``
give keyword arguments for ``standard_record``; ``member_resources`` /
``request_resources`` give FHIR R4 Patient and Coverage dicts, as stored by
the old payer and as sent in ``$member-match``.
"""

from __future__ import annotations

import random
import string
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import IntEnum, IntFlag
from typing import Any

from payerbridge.identity.demographics.nicknames import ROOTS
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.types import MemberId
from payerbridge_tools.population.households import (
    Household,
    Member,
    build_household,
    draw_home,
    stream_households,
)
from payerbridge_tools.population.mix import HouseholdMix
from payerbridge_tools.population.network import (
    PayerContext,
    build_network,
    derive_seed,
    payer_context,
)
from payerbridge_tools.population.vocabulary import FEMALE_NAMES, MALE_NAMES, PLACES, SURNAMES

__all__ = [
    "AS_OF",
    "NOISE",
    "IdentitySet",
    "Noise",
    "Relationship",
    "RequestKind",
    "generate_identity_set",
]

AS_OF = date(2026, 1, 1)
"""The day the population is drawn as of (ages, coverage), unless asked otherwise."""
# The old payer: the one payer of a one-payer network, whose member ids are
# its prefix and nine digits.
_NETWORK = build_network(1)
_PAYER = _NETWORK.payers[0]
GIVEN_NAMES: tuple[str, ...] = FEMALE_NAMES + MALE_NAMES
_FEMALE_COUNT = len(FEMALE_NAMES)
_SUFFIX_TEXT = ("", "Jr", "Sr")  # index 0: no generational suffix
_NO_NAME = 0xFFFF
_CARD_SPACE = 10**9
_SSN_SPACE = 665 * 99 * 9999  # areas 001-665, groups 01-99, serials 0001-9999
_PEOPLE_PER_ZIP = 3000
_SSN_SHARE = 0.85  # members whose own SSN is on file
_SSN_CARRIED_SHARE = 0.08  # dependents whose record holds the subscriber's instead
_MEMBER_CARD_PREFIX = _PAYER.member_id_prefix
_FOREIGN_CARD_PREFIX = "ZX"
_GIVEN_INDEX = {name: index for index, name in enumerate(GIVEN_NAMES)}
_RELATIONSHIP_CODES = {"self": 0, "spouse": 1, "child": 2}
# Nicknames of the vocabulary's given names, from the engine's table (so a
# nickname is one a form might show, not an invented spelling).
# What standardisation makes of each name ("Zoë" and "Zoe" are one name to matching).
_GIVEN_ROOTS = tuple(
    frozenset(standard_record(Demographics(given=[n])).first_name_roots) for n in GIVEN_NAMES
)
_NICKNAMES: dict[int, tuple[str, ...]] = {
    index: tuple(ROOTS[name.lower()])
    for name, index in _GIVEN_INDEX.items()
    if ROOTS.get(name.lower())
}
MEMBER_SYSTEM = "https://old-payer.example/member-id"
MIX = HouseholdMix(twin_share=0.08, junior_share=0.15, has_fictional_phones=False)
"""The population's mix, harder than the sandbox's: 8% of births twins, about 6% of male
subscribers a Sr with his Jr on the plan, phone numbers of any exchange; ``zips_per_place``
grows with the population (``_mix``)."""
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"


class Relationship(IntEnum):
    """A member's relationship to the subscriber (FHIR ``subscriber-relationship`` codes)."""

    SELF = 0
    SPOUSE = 1
    CHILD = 2

    @property
    def code(self) -> str:
        return self.name.lower()


class RequestKind(IntEnum):
    """Who a request is about."""

    MEMBER = 0
    OUTSIDER = 1  # someone from a household that is not on the plan
    RELATIVE = 2  # a member's relative who never enrolled


class Noise(IntFlag):
    """How a request departs from the member's record (a bit per kind)."""

    NONE = 0
    NICKNAME = 1 << 0
    GIVEN_TYPO = 1 << 1
    FAMILY_TYPO = 1 << 2
    MARRIED = 1 << 3  # new surname; maiden name sometimes given as a previous name
    HYPHENATED = 1 << 4  # maiden-new double surname
    BIRTH_SWAP = 1 << 5
    BIRTH_TYPO = 1 << 6
    MOVED = 1 << 7  # new street address, ZIP and phone
    NO_MEMBER_ID = 1 << 8
    MEMBER_ID_TYPO = 1 << 9
    SUBSCRIBERS_CARD = 1 << 10  # a dependent showing the subscriber's member id
    NO_SUBSCRIBER_ID = 1 << 11
    NO_SSN = 1 << 12
    NO_SEX = 1 << 13
    NO_PHONE = 1 << 14


# Probability of each departure, drawn independently per request about a member.
NOISE: dict[Noise, float] = {
    Noise.NICKNAME: 0.10,  # only for names with a nickname
    Noise.GIVEN_TYPO: 0.03,
    Noise.FAMILY_TYPO: 0.03,
    Noise.MARRIED: 0.03,  # adults only
    Noise.HYPHENATED: 0.01,  # adults only
    Noise.BIRTH_SWAP: 0.015,  # only when the day is a possible month
    Noise.BIRTH_TYPO: 0.015,
    Noise.MOVED: 0.10,
    Noise.NO_MEMBER_ID: 0.15,
    Noise.MEMBER_ID_TYPO: 0.02,
    Noise.SUBSCRIBERS_CARD: 0.15,  # dependents only
    Noise.NO_SUBSCRIBER_ID: 0.30,
    Noise.NO_SSN: 0.70,
    Noise.NO_SEX: 0.03,
    Noise.NO_PHONE: 0.20,
}


@dataclass
class _Columns:
    """One field per column; row ``i`` is one person (member or request)."""

    given: array[int] = field(default_factory=lambda: array("H"))
    family: array[int] = field(default_factory=lambda: array("H"))
    previous_family: array[int] = field(default_factory=lambda: array("H"))  # _NO_NAME: none
    suffix: bytearray = field(default_factory=bytearray)  # index into _SUFFIX_TEXT
    birth: array[int] = field(default_factory=lambda: array("I"))  # YYYYMMDD
    sex: bytearray = field(default_factory=bytearray)  # 0 unknown, 1 female, 2 male
    home: array[int] = field(default_factory=lambda: array("i"))  # index into IdentitySet.homes
    postal_code: array[int] = field(default_factory=lambda: array("I"))  # 0: none
    phone: array[int] = field(default_factory=lambda: array("Q"))  # 0: none
    member_card: array[int] = field(default_factory=lambda: array("q"))  # -1: none
    subscriber_card: array[int] = field(default_factory=lambda: array("q"))  # -1: none
    ssn: array[int] = field(default_factory=lambda: array("I"))  # 0: none
    ssn_carried: bytearray = field(default_factory=bytearray)
    household: array[int] = field(default_factory=lambda: array("i"))  # -1: none

    def __len__(self) -> int:
        return len(self.birth)


@dataclass
class _Person:
    """A person being generated (one row before it is appended)."""

    given: int
    family: int
    birth: int
    sex: int
    home: int
    postal_code: int
    phone: int
    household: int
    relationship: Relationship = Relationship.SELF
    suffix: int = 0
    ssn: int = 0
    ssn_carried: bool = False
    member_card: int = -1
    subscriber_card: int = -1
    previous_family: int = _NO_NAME


def _append(columns: _Columns, p: _Person) -> None:
    columns.given.append(p.given)
    columns.family.append(p.family)
    columns.previous_family.append(p.previous_family)
    columns.suffix.append(p.suffix)
    columns.birth.append(p.birth)
    columns.sex.append(p.sex)
    columns.home.append(p.home)
    columns.postal_code.append(p.postal_code)
    columns.phone.append(p.phone)
    columns.member_card.append(p.member_card)
    columns.subscriber_card.append(p.subscriber_card)
    columns.ssn.append(p.ssn)
    columns.ssn_carried.append(p.ssn_carried)
    columns.household.append(p.household)


def _row(columns: _Columns, i: int) -> _Person:
    return _Person(
        given=columns.given[i],
        family=columns.family[i],
        birth=columns.birth[i],
        sex=columns.sex[i],
        home=columns.home[i],
        postal_code=columns.postal_code[i],
        phone=columns.phone[i],
        household=columns.household[i],
        suffix=columns.suffix[i],
        ssn=columns.ssn[i],
        ssn_carried=bool(columns.ssn_carried[i]),
        member_card=columns.member_card[i],
        subscriber_card=columns.subscriber_card[i],
        previous_family=columns.previous_family[i],
    )


@dataclass
class IdentitySet:
    """A population of members and the match requests about them, with ground truth.

    Member ``i`` is Patient ``member_id(i)``. Request ``j`` is about member
    ``truth[j]`` (-1: about nobody on the plan); ``request_kind[j]`` says who
    it is about and ``request_noise[j]`` how it departs from the member's record.
    """

    seed: int
    members: _Columns
    relationship: bytearray
    requests: _Columns
    truth: array[int]
    request_kind: bytearray
    request_noise: array[int]
    # Surnames by index: the vocabulary's, then the double-barrelled ones households hold.
    surnames: list[str] = field(default_factory=lambda: list(SURNAMES))
    # Street lines by index: one entry per household, and one per request that moved.
    homes: list[tuple[str, ...]] = field(default_factory=list)
    # Free text that the vocabulary cannot hold (typos, nicknames), by request index.
    given_text: dict[int, str] = field(default_factory=dict)
    family_text: dict[int, str] = field(default_factory=dict)
    member_id_text: dict[int, str] = field(default_factory=dict)

    @property
    def member_count(self) -> int:
        return len(self.members)

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def member_id(self, i: int) -> MemberId:
        return MemberId(f"pat-{i}")

    def truth_of(self, j: int) -> MemberId | None:
        t = self.truth[j]
        return None if t < 0 else self.member_id(t)

    def household_of_member(self, i: int) -> int:
        return self.members.household[i]

    def household_of_request(self, j: int) -> int:
        """The household the request's person belongs to (-1: one not on the plan)."""
        return self.requests.household[j]

    def member_fields(self, i: int) -> dict[str, Any]:
        """Keyword arguments for ``standard_record``: member ``i`` as the old payer holds them."""
        return _fields(self, self.members, i, {}, {}, {})

    def request_fields(self, j: int) -> dict[str, Any]:
        """Keyword arguments for ``standard_record``: request ``j`` as the new payer sends it."""
        return _fields(
            self, self.requests, j, self.given_text, self.family_text, self.member_id_text
        )

    def member_resources(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Member ``i`` as stored: (Patient, Coverage); the Coverage carries the card."""
        fields = self.member_fields(i)
        patient_id = self.member_id(i)
        patient = _patient(patient_id, fields)
        relationship = Relationship(self.relationship[i]).code
        coverage = _coverage(f"cov-{i}", f"Patient/{patient_id}", fields, relationship)
        return patient, coverage

    def request_resources(self, j: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Request ``j`` as a $member-match sends it: (MemberPatient, CoverageToMatch)."""
        fields = self.request_fields(j)
        patient = _patient(f"req-{j}", fields)
        coverage = _coverage(f"ctm-{j}", f"Patient/req-{j}", fields, None)
        return patient, coverage

    def iter_member_fields(self) -> Iterator[dict[str, Any]]:
        return (self.member_fields(i) for i in range(self.member_count))

    def iter_request_fields(self) -> Iterator[dict[str, Any]]:
        return (self.request_fields(j) for j in range(self.request_count))


def card_text(number: int) -> str:
    return (
        f"{_MEMBER_CARD_PREFIX}{number:09d}"
        if number < _CARD_SPACE
        else (f"{_FOREIGN_CARD_PREFIX}{number - _CARD_SPACE:09d}")
    )


def ssn_text(number: int) -> str:
    return f"{number // 1000000:03d}-{number // 10000 % 100:02d}-{number % 10000:04d}"


def _fields(
    data: IdentitySet,
    columns: _Columns,
    i: int,
    given_text: dict[int, str],
    family_text: dict[int, str],
    member_id_text: dict[int, str],
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "given": [given_text.get(i) or GIVEN_NAMES[columns.given[i]]],
        "family": family_text.get(i) or data.surnames[columns.family[i]],
    }
    previous = columns.previous_family[i]
    if previous != _NO_NAME:
        fields["previous_families"] = [data.surnames[previous]]
    if columns.suffix[i]:
        fields["suffixes"] = [_SUFFIX_TEXT[columns.suffix[i]]]
    birth = columns.birth[i]
    fields["birth_date"] = f"{birth // 10000:04d}-{birth // 100 % 100:02d}-{birth % 100:02d}"
    if columns.sex[i]:
        fields["sex"] = "female" if columns.sex[i] == 1 else "male"
    fields["address_lines"] = list(data.homes[columns.home[i]])
    fields["postal_code"] = f"{columns.postal_code[i]:05d}"
    if columns.phone[i]:
        phone = f"{columns.phone[i]:010d}"
        fields["phone"] = f"{phone[:3]}-{phone[3:6]}-{phone[6:]}"
    member = member_id_text.get(i)
    if member is None and columns.member_card[i] >= 0:
        member = card_text(columns.member_card[i])
    if member is not None:
        fields["member_id"] = member
    if columns.subscriber_card[i] >= 0:
        fields["subscriber_id"] = card_text(columns.subscriber_card[i])
    if columns.ssn[i]:
        fields["ssn"] = ssn_text(columns.ssn[i])
        if columns.ssn_carried[i]:
            fields["ssn_carried"] = True
    return fields


def _patient(patient_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "family": fields["family"], "given": fields["given"]}
    if "suffixes" in fields:
        name["suffix"] = fields["suffixes"]
    names = [name]
    names += [{"use": "maiden", "family": f} for f in fields.get("previous_families", ())]
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": names,
        "birthDate": fields["birth_date"],
    }
    if "sex" in fields:
        patient["gender"] = fields["sex"]
    patient["address"] = [
        {
            "use": "home",
            "line": fields["address_lines"],
            "postalCode": fields["postal_code"],
            "country": "US",
        }
    ]
    if "phone" in fields:
        patient["telecom"] = [{"system": "phone", "value": fields["phone"], "use": "home"}]
    if "ssn" in fields:
        patient["identifier"] = [{"system": SSN_SYSTEM, "value": fields["ssn"]}]
    return patient


def _coverage(
    coverage_id: str, beneficiary: str, fields: dict[str, Any], relationship: str | None
) -> dict[str, Any]:
    coverage: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": coverage_id,
        "status": "active",
        "beneficiary": {"reference": beneficiary},
        "payor": [{"display": "Old Payer"}],
    }
    if "member_id" in fields:
        coverage["identifier"] = [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MB"}]},
                "system": MEMBER_SYSTEM,
                "value": fields["member_id"],
            }
        ]
    if "subscriber_id" in fields:
        coverage["subscriberId"] = fields["subscriber_id"]
    if relationship is not None:
        coverage["relationship"] = {
            "coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": relationship}]
        }
    return coverage


def _mix(members: int) -> HouseholdMix:
    """``MIX``, with about ``_PEOPLE_PER_ZIP`` people to a ZIP code however large the plan."""
    return replace(MIX, zips_per_place=max(1, members // (_PEOPLE_PER_ZIP * len(PLACES))))


class _Generator:
    """The set's people from the population generator, and the draws its requests need
    from one seeded ``random.Random`` of their own."""

    def __init__(self, seed: int, members: int, as_of: date) -> None:
        self.ctx: PayerContext = payer_context(_NETWORK, _PAYER, seed, as_of, mix=_mix(members))
        self.rng = random.Random(derive_seed(self.ctx.seed, "requests"))
        # Who has an SSN on file, in the order people are drawn.
        self.ssn_draws = random.Random(derive_seed(self.ctx.seed, "ssn"))
        self.ssn_offset = self.ssn_draws.randrange(_SSN_SPACE)
        self.people = 0  # SSNs are drawn per person given one
        self.surname_index = {name: index for index, name in enumerate(SURNAMES)}

    def skewed(self, size: int) -> int:
        """An index into a common-first list: about 1.5% of draws hit the first entry."""
        return int(size * self.rng.random() ** 1.3)

    def given(self, sex: int, avoid: Sequence[int] = ()) -> int:
        """A given name for ``sex``, none that matching would take for a name in ``avoid``."""
        while True:
            if sex == 1:
                index = self.skewed(_FEMALE_COUNT)
            else:
                index = _FEMALE_COUNT + self.skewed(len(MALE_NAMES))
            if not any(_GIVEN_ROOTS[index] & _GIVEN_ROOTS[other] for other in avoid):
                return index

    def birth(self, low: int, high: int) -> int:
        year = self.rng.randint(low, high)
        return year * 10000 + self.rng.randint(1, 12) * 100 + self.rng.randint(1, 28)

    def ssn(self) -> int:
        """A valid SSN, unique per person (a bijection of the person counter)."""
        self.people += 1
        k = (self.people * 1_000_003 + self.ssn_offset) % _SSN_SPACE
        area, rest = divmod(k, 99 * 9999)
        group, serial = divmod(rest, 9999)
        return (area + 1) * 1000000 + (group + 1) * 10000 + serial + 1

    def home(self, data: IdentitySet) -> tuple[int, int, int]:
        """A home to move to: its lines' index in ``data.homes``, its ZIP and landline."""
        home = draw_home(self.ctx, self.rng.random)
        data.homes.append(home.lines)
        return len(data.homes) - 1, int(home.postal_code), _phone_number(home.phone)

    def household(self, data: IdentitySet, household: Household) -> list[_Person]:
        """The household's members as rows, its lines added to ``data.homes``, and the SSNs
        the old payer has on file for them."""
        data.homes.append(household.lines)
        home = len(data.homes) - 1
        people = [self._person(data, household, member, home) for member in household.members]
        r = self.ssn_draws.random
        for person in people:
            person.ssn = self.ssn() if r() < _SSN_SHARE else 0
        head = people[0]
        for person in people[1:]:
            if head.ssn and r() < _SSN_CARRIED_SHARE:
                person.ssn, person.ssn_carried = head.ssn, True
        return people

    def _person(
        self, data: IdentitySet, household: Household, member: Member, home: int
    ) -> _Person:
        birth = member.birth_date
        return _Person(
            given=_GIVEN_INDEX[member.given[0]],
            family=self._surname(data, member.family),
            birth=birth.year * 10000 + birth.month * 100 + birth.day,
            sex=1 if member.gender == "female" else 2,
            home=home,
            postal_code=int(household.postal_code),
            phone=_phone_number(member.phone),
            household=household.index,
            relationship=Relationship(_RELATIONSHIP_CODES[member.relationship]),
            suffix=_SUFFIX_TEXT.index(member.suffix),
            member_card=_card_number(member.member_id),
            subscriber_card=_card_number(household.subscriber_id),
        )

    def _surname(self, data: IdentitySet, family: str) -> int:
        """``family``'s index in ``data.surnames``, added when a household made it up
        (a double-barrelled name)."""
        index = self.surname_index.get(family)
        if index is None:
            index = self.surname_index[family] = len(data.surnames)
            data.surnames.append(family)
            if index >= _NO_NAME:
                raise ValueError("more surnames than the set can index")
        return index


def _phone_number(phone: str) -> int:
    return int(phone.replace("-", ""))


def _card_number(member_id: str) -> int:
    return int(member_id.removeprefix(_MEMBER_CARD_PREFIX))


def generate_identity_set(
    members: int,
    *,
    seed: int = 42,
    requests: int | None = None,
    non_member_share: float = 0.1,
    as_of: date = AS_OF,
) -> IdentitySet:
    """``members`` members (whole households, the last cut short) and ``requests`` requests
    about them.

    ``requests`` defaults to one per ten members (at least 100); a share
    ``non_member_share`` of them is about people who are not members, half of
    those relatives of members.
    """
    if members < 10 or not 0.0 <= non_member_share < 1.0:
        raise ValueError("need at least 10 members and a non-member share in [0, 1)")
    wanted = requests if requests is not None else max(100, members // 10)
    gen = _Generator(seed, members, as_of)
    data = IdentitySet(
        seed=seed,
        members=_Columns(),
        relationship=bytearray(),
        requests=_Columns(),
        truth=array("i"),
        request_kind=bytearray(),
        request_noise=array("I"),
    )
    households = 0
    for household in stream_households(gen.ctx, members):
        for person in gen.household(data, household):
            _append(data.members, person)
            data.relationship.append(person.relationship)
        households += 1
    outsiders = round(wanted * non_member_share)
    kinds = [RequestKind.MEMBER] * (wanted - outsiders)
    kinds += [RequestKind.OUTSIDER] * (outsiders - outsiders // 2)
    kinds += [RequestKind.RELATIVE] * (outsiders // 2)
    gen.rng.shuffle(kinds)
    next_outsider_household = households  # households the plan does not have
    for kind in kinds:
        if kind is RequestKind.MEMBER:
            _add_member_request(gen, data)
        elif kind is RequestKind.OUTSIDER:
            people = gen.household(data, build_household(gen.ctx, next_outsider_household))
            next_outsider_household += 1
            _add_outsider_request(gen, data, gen.rng.choice(people))
        else:
            _add_relative_request(gen, data)
    return data


def _push(data: IdentitySet, person: _Person, truth: int, kind: RequestKind, noise: Noise) -> None:
    _append(data.requests, person)
    data.truth.append(truth)
    data.request_kind.append(kind)
    data.request_noise.append(int(noise))


def _add_member_request(gen: _Generator, data: IdentitySet) -> None:
    rng = gen.rng
    i = rng.randrange(data.member_count)
    person = _row(data.members, i)
    j = data.request_count
    noise = Noise.NONE
    relationship = Relationship(data.relationship[i])
    person.ssn_carried = False  # a request says whose SSN it is no more than a form does
    if rng.random() < NOISE[Noise.NICKNAME] and person.given in _NICKNAMES:
        data.given_text[j] = rng.choice(_NICKNAMES[person.given]).capitalize()
        noise |= Noise.NICKNAME
    elif rng.random() < NOISE[Noise.GIVEN_TYPO]:
        data.given_text[j] = _typo(rng, GIVEN_NAMES[person.given])
        noise |= Noise.GIVEN_TYPO
    noise |= _surname_noise(rng, data, person, j, relationship)
    noise |= _birth_noise(rng, person)
    if rng.random() < NOISE[Noise.MOVED]:
        person.home, person.postal_code, person.phone = gen.home(data)
        noise |= Noise.MOVED
    noise |= _card_noise(rng, data, person, j, relationship)
    noise |= _missing(rng, person)
    _push(data, person, i, RequestKind.MEMBER, noise)


def _surname_noise(
    rng: random.Random, data: IdentitySet, person: _Person, j: int, relationship: Relationship
) -> Noise:
    roll = rng.random()
    if roll < NOISE[Noise.FAMILY_TYPO]:
        data.family_text[j] = _typo(rng, data.surnames[person.family])
        return Noise.FAMILY_TYPO
    roll -= NOISE[Noise.FAMILY_TYPO]
    is_adult = relationship is not Relationship.CHILD or person.birth // 10000 < 2000
    if not is_adult or roll >= NOISE[Noise.MARRIED] + NOISE[Noise.HYPHENATED]:
        return Noise.NONE
    maiden, new = person.family, _other_surname(rng, avoid=person.family)
    if roll < NOISE[Noise.MARRIED]:
        person.family = new
        if rng.random() < 0.5:  # the form also gives the maiden name
            person.previous_family = maiden
        return Noise.MARRIED
    data.family_text[j] = f"{data.surnames[maiden]}-{data.surnames[new]}"
    return Noise.HYPHENATED


def _other_surname(rng: random.Random, avoid: int) -> int:
    while True:
        index = int(len(SURNAMES) * rng.random() ** 1.3)
        if index != avoid:
            return index


def _birth_noise(rng: random.Random, person: _Person) -> Noise:
    year, month, day = person.birth // 10000, person.birth // 100 % 100, person.birth % 100
    roll = rng.random()
    if roll < NOISE[Noise.BIRTH_SWAP]:
        if day <= 12 and day != month:
            person.birth = year * 10000 + day * 100 + month
            return Noise.BIRTH_SWAP
        return Noise.NONE
    if roll < NOISE[Noise.BIRTH_SWAP] + NOISE[Noise.BIRTH_TYPO]:
        if rng.random() < 0.5:  # last digit of the year
            year = year - year % 10 + (year % 10 + rng.randint(1, 9)) % 10
        else:  # last digit of the day, kept a valid day
            day = day - day % 10 + (day % 10 + rng.randint(1, 9)) % 10
            day = day if 1 <= day <= 28 else (day % 10) or 1
        changed = year * 10000 + month * 100 + day
        if changed != person.birth:
            person.birth = changed
            return Noise.BIRTH_TYPO
    return Noise.NONE


def _card_noise(
    rng: random.Random, data: IdentitySet, person: _Person, j: int, relationship: Relationship
) -> Noise:
    noise = Noise.NONE
    roll = rng.random()
    if roll < NOISE[Noise.NO_MEMBER_ID]:
        person.member_card = -1
        noise |= Noise.NO_MEMBER_ID
    elif roll < NOISE[Noise.NO_MEMBER_ID] + NOISE[Noise.MEMBER_ID_TYPO]:
        data.member_id_text[j] = _digit_typo(rng, card_text(person.member_card))
        noise |= Noise.MEMBER_ID_TYPO
    elif relationship is not Relationship.SELF and rng.random() < NOISE[Noise.SUBSCRIBERS_CARD]:
        person.member_card = person.subscriber_card
        noise |= Noise.SUBSCRIBERS_CARD
    if rng.random() < NOISE[Noise.NO_SUBSCRIBER_ID]:
        person.subscriber_card = -1
        noise |= Noise.NO_SUBSCRIBER_ID
    return noise


def _missing(rng: random.Random, person: _Person) -> Noise:
    noise = Noise.NONE
    if rng.random() < NOISE[Noise.NO_SSN]:
        person.ssn, noise = 0, noise | Noise.NO_SSN
    if rng.random() < NOISE[Noise.NO_SEX]:
        person.sex, noise = 0, noise | Noise.NO_SEX
    if rng.random() < NOISE[Noise.NO_PHONE]:
        person.phone, noise = 0, noise | Noise.NO_PHONE
    return noise


def _add_outsider_request(gen: _Generator, data: IdentitySet, person: _Person) -> None:
    """Someone never on the plan: their own card is another payer's, when they show one."""
    rng = gen.rng
    person.household = -1
    person.member_card = _CARD_SPACE + rng.randrange(_CARD_SPACE) if rng.random() < 0.5 else -1
    person.subscriber_card = -1
    person.ssn_carried = False
    noise = _missing(rng, person)
    _push(data, person, -1, RequestKind.OUTSIDER, noise)


def _add_relative_request(gen: _Generator, data: IdentitySet) -> None:
    """A member's relative who never enrolled: a twin, a sibling or a same-named father.

    They live at the member's address and often show the household's card
    (the subscriber's member id and subscriber id).
    """
    rng = gen.rng
    i = rng.randrange(data.member_count)
    relative = _row(data.members, i)
    household = _household_rows(data.members, i)
    names = [data.members.given[k] for k in household]
    relative.ssn = gen.ssn() if rng.random() < 0.3 else 0
    relative.ssn_carried = False
    relative.suffix = 0
    roll = rng.random()
    if roll < 0.4:  # a twin
        relative.sex = relative.sex if rng.random() < 0.6 else 3 - relative.sex
        relative.given = gen.given(relative.sex, avoid=names)
    elif roll < 0.8:  # a sibling
        year = relative.birth // 10000 + rng.choice((-3, -2, -1, 1, 2, 3))
        relative.birth = year * 10000 + rng.randint(1, 12) * 100 + rng.randint(1, 28)
        relative.sex = rng.choice((1, 2))
        relative.given = gen.given(relative.sex, avoid=names)
    else:  # a parent: a father of the same name when the member is a man (a Jr)
        if relative.sex != 2:
            relative.sex = rng.choice((1, 2))
            relative.given = gen.given(relative.sex, avoid=names)
        relative.birth = gen.birth(relative.birth // 10000 - 40, relative.birth // 10000 - 20)
        while any(data.members.birth[k] == relative.birth for k in household):
            relative.birth -= 10000  # not the birth date of a member with that name
    if rng.random() < 0.6:
        relative.member_card = relative.subscriber_card
    else:
        relative.member_card, relative.subscriber_card = -1, -1
    noise = _missing(rng, relative)
    _push(data, relative, -1, RequestKind.RELATIVE, noise)


def _household_rows(columns: _Columns, i: int) -> range:
    """The rows of member ``i``'s household (households are generated contiguously)."""
    household, first, last = columns.household[i], i, i
    while first > 0 and columns.household[first - 1] == household:
        first -= 1
    while last + 1 < len(columns) and columns.household[last + 1] == household:
        last += 1
    return range(first, last + 1)


def _typo(rng: random.Random, text: str) -> str:
    """One substitution, transposition or deletion inside the word (never its first letter)."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    choice = rng.random()
    if choice < 0.4:
        letter = rng.choice([c for c in string.ascii_lowercase if c != text[i].lower()])
        return text[:i] + letter + text[i + 1 :]
    if choice < 0.7 and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def _digit_typo(rng: random.Random, card: str) -> str:
    i = rng.randrange(len(_MEMBER_CARD_PREFIX), len(card))
    digit = str((int(card[i]) + rng.randint(1, 9)) % 10)
    return card[:i] + digit + card[i + 1 :]
