"""A small seeded synthetic payer population with households, traps and noisy requests.

For identity tests only (no FHIR, no I/O): people are raw keyword arguments
for ``standard_record``, grouped in households that share surname, address,
ZIP, phone and subscriber id. The population is deliberately hard: twins,
Jr/Sr pairs, dependents carrying the subscriber's SSN, a heavily skewed name
distribution. Requests are copies of members with typos, nicknames, married
names, moves and missing card data, plus requests for people who are not
members (some of them relatives of members).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from payerbridge.identity.standardize import StandardRecord, standard_record
from payerbridge.types import MemberId


def _words(text: str) -> list[str]:
    return text.split()


MALE = _words("""
    James John Robert Michael William David Richard Joseph Thomas Charles Daniel Matthew
    Anthony Mark Steven Andrew Joshua Kevin Brian George Edward Jacob Nicholas Samuel
    Alexander Patrick Peter Henry Jose Luis Carlos Minh Wei Arjun Omar Kwame Liam Noah
    Ethan Mason Lucas Elijah Logan Owen Caleb Isaac
""")
FEMALE = _words("""
    Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Margaret
    Emily Michelle Amanda Melissa Rebecca Laura Katherine Christine Samantha Alexandra Olivia
    Emma Sophia Isabella Mia Charlotte Amelia Harper Evelyn Abigail Maria Lucia Ngoc Mei
    Priya Aisha Fatima Nicole Victoria Hannah
""")
SURNAMES = [
    *_words("""
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
    Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White
    Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres
    Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell O'Brien
    Garcia-Lopez Smith-Jones Kowalski Okafor Patel Chen Kim Tran Cohen Schmidt Muller
"""),
    "De la Cruz",
]
STREETS = _words("Main Oak Maple Cedar Pine Elm Lake Hill Park Walnut Sunset Lincoln River")
SUFFIXES = ("Street", "St", "Avenue", "Ave", "Road", "Drive", "Lane", "Court", "Way")
ZIPS = [f"{60000 + 137 * i:05d}" for i in range(40)]
NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Margaret": "Peggy",
    "James": "Jim",
    "Katherine": "Kate",
    "Michael": "Mike",
    "Richard": "Rick",
    "Joseph": "Joe",
    "Thomas": "Tom",
    "Jennifer": "Jenny",
    "Patricia": "Pat",
    "Samantha": "Sam",
    "Alexander": "Alex",
    "Daniel": "Danny",
    "Rebecca": "Becky",
}


@dataclass
class Person:
    """One member: raw fields, household and the id our store knows them by."""

    member_id: MemberId
    household: int
    relationship: str
    fields: dict[str, Any]

    def record(self) -> StandardRecord:
        return standard_record(**self.fields)


@dataclass
class Request:
    """A match request and the member it is truly about (None: not a member)."""

    fields: dict[str, Any]
    truth: MemberId | None

    def record(self) -> StandardRecord:
        return standard_record(**self.fields)


@dataclass
class Population:
    members: list[Person] = field(default_factory=list)
    outsiders: list[Person] = field(default_factory=list)


def _skewed(rng: random.Random, names: list[str]) -> str:
    roll = rng.random()
    return names[int(roll * roll * len(names))]


def _card_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + "".join(
        rng.choice(string.digits) for _ in range(7)
    )


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _dob(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _person(
    rng: random.Random,
    sex: str,
    family: str,
    dob: str,
    home: dict[str, Any],
    given: str | None = None,
) -> dict[str, Any]:
    names = MALE if sex == "male" else FEMALE
    return {
        "given": [given or _skewed(rng, names)],
        "family": family,
        "birth_date": dob,
        "sex": sex,
        "member_id": _card_id(rng),
        "ssn": _ssn(rng),
        **home,
    }


def _household(rng: random.Random, index: int) -> list[tuple[str, dict[str, Any]]]:
    family = _skewed(rng, SURNAMES)
    home = {
        "address_lines": [f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"],
        "postal_code": rng.choice(ZIPS),
        "phone": f"312555{rng.randint(0, 9999):04d}",
    }
    sex = rng.choice(("male", "female"))
    head = _person(rng, sex, family, _dob(rng, 1950, 1990), home)
    people = [("self", head)]
    if rng.random() < 0.6:
        other = "female" if sex == "male" else "male"
        spouse_family = family if rng.random() < 0.8 else _skewed(rng, SURNAMES)
        people.append(("spouse", _person(rng, other, spouse_family, _dob(rng, 1950, 1990), home)))
    born = int(head["birth_date"][:4])
    for _ in range(rng.choice((0, 0, 1, 2, 2, 3, 4))):
        child_sex = rng.choice(("male", "female"))
        child = _person(rng, child_sex, family, _dob(rng, born + 20, born + 35), home)
        people.append(("child", child))
        if rng.random() < 0.08:  # twins: same birth date and surname, another first name
            names = MALE if child_sex == "male" else FEMALE
            twin_name = rng.choice([n for n in names if n != child["given"][0]])
            people.append(
                (
                    "child",
                    _person(rng, child_sex, family, child["birth_date"], home, given=twin_name),
                )
            )
    if sex == "male" and rng.random() < 0.05:  # a junior named after his father
        junior = _person(
            rng, "male", family, _dob(rng, born + 20, born + 35), home, given=head["given"][0]
        )
        head["suffixes"], junior["suffixes"] = ["Sr"], ["Jr"]
        people.append(("child", junior))
    subscriber_id = head["member_id"]
    for relationship, person in people:
        person["subscriber_id"] = subscriber_id
        if relationship != "self" and rng.random() < 0.1:
            person["ssn"], person["ssn_carried"] = head["ssn"], True
    return people


def build_population(seed: int, households: int, outsider_households: int) -> Population:
    """Member households, plus households of non-members for negative requests."""
    rng = random.Random(seed)
    population = Population()
    for index in range(households + outsider_households):
        target = population.members if index < households else population.outsiders
        for position, (relationship, fields) in enumerate(_household(rng, index)):
            target.append(
                Person(MemberId(f"pat-{index:05d}-{position}"), index, relationship, fields)
            )
    # Non-member relatives: a twin or sibling of a member who never enrolled.
    for person in rng.sample(population.members, k=max(1, len(population.members) // 50)):
        relative = dict(person.fields)
        names = MALE if relative["sex"] == "male" else FEMALE
        relative["given"] = [rng.choice([n for n in names if n != person.fields["given"][0]])]
        relative["member_id"], relative["ssn"] = _card_id(rng), _ssn(rng)
        relative.pop("ssn_carried", None)
        population.outsiders.append(
            Person(MemberId("outsider"), person.household, "child", relative)
        )
    return population


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    choice = rng.random()
    if choice < 0.4:
        return text[:i] + rng.choice(string.ascii_lowercase) + text[i + 1 :]
    if choice < 0.7:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def _dob_error(rng: random.Random, dob: str) -> str:
    year, month, day = dob.split("-")
    if rng.random() < 0.5 and int(day) <= 12 and day != month:
        return f"{year}-{day}-{month}"
    digits = list(year + month + day)
    i = rng.choice((3, 7))
    digits[i] = str((int(digits[i]) + rng.randint(1, 8)) % 10)
    text = "".join(digits)
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


# How often a request departs from the member's record, one draw per kind.
NOISE = {
    "nickname": 0.10,
    "given_typo": 0.03,
    "family_typo": 0.03,
    "married": 0.03,
    "birth_date": 0.03,
    "moved": 0.10,
    "no_member_id": 0.15,
    "member_id_typo": 0.03,
    "subscribers_card": 0.12,
    "no_subscriber_id": 0.3,
    "no_ssn": 0.7,
    "no_sex": 0.05,
}


def noisy_request(rng: random.Random, person: Person, truth: MemberId | None) -> Request:
    """A request about ``person`` as a member (or their new payer) might send it."""
    fields = dict(person.fields)
    fields.pop("ssn_carried", None)
    given = fields["given"][0]
    roll = rng.random()
    if roll < NOISE["nickname"] and given in NICKNAMES:
        fields["given"] = [NICKNAMES[given]]
    elif roll < NOISE["nickname"] + NOISE["given_typo"]:
        fields["given"] = [_typo(rng, given)]
    roll = rng.random()
    if roll < NOISE["family_typo"]:
        fields["family"] = _typo(rng, fields["family"])
    elif roll < NOISE["family_typo"] + NOISE["married"]:  # married since; maiden name kept
        fields["previous_families"] = [fields["family"]]
        fields["family"] = _skewed(rng, SURNAMES)
    if rng.random() < NOISE["birth_date"]:
        fields["birth_date"] = _dob_error(rng, fields["birth_date"])
    if rng.random() < NOISE["moved"]:  # new address, ZIP and phone
        fields["address_lines"] = [f"{rng.randint(1, 9999)} {rng.choice(STREETS)} Blvd"]
        fields["postal_code"] = rng.choice(ZIPS)
        fields["phone"] = f"773555{rng.randint(0, 9999):04d}"
    card = rng.random()
    if card < NOISE["no_member_id"]:
        fields.pop("member_id")
    elif card < NOISE["no_member_id"] + NOISE["member_id_typo"]:
        fields["member_id"] = _typo(rng, fields["member_id"].lower()).upper()
    elif (
        card < NOISE["no_member_id"] + NOISE["member_id_typo"] + NOISE["subscribers_card"]
        and person.relationship != "self"
    ):
        fields["member_id"] = fields["subscriber_id"]  # the card shows the subscriber's id
    for kind, name in (("no_subscriber_id", "subscriber_id"), ("no_ssn", "ssn"), ("no_sex", "sex")):
        if rng.random() < NOISE[kind]:
            fields.pop(name, None)
    return Request(fields, truth)


def build_requests(
    seed: int, population: Population, members: int, outsiders: int
) -> list[Request]:
    rng = random.Random(seed)
    requests = [
        noisy_request(rng, person, person.member_id)
        for person in rng.sample(population.members, k=members)
    ]
    requests += [
        noisy_request(rng, person, None) for person in rng.sample(population.outsiders, k=outsiders)
    ]
    rng.shuffle(requests)
    return requests
