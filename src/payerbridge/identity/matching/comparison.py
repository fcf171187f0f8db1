"""Comparators: how the comparison level of a pair of records is computed, per field.

This is the engine half of the Splink-style split: ``spec`` declares which
comparisons the model uses, with their levels' meaning and priors; this module
holds, for each kind of comparison, the function that puts a pair of
``StandardRecord`` s into one of those levels.

Conventions shared by every comparator:

* level 0 is ``"null"``: a value is missing on either side, so the comparison
  carries no evidence (its match weight is 0);
* the other levels run from the strongest agreement to the disagreements
  (``"else"``; the birth date's ``"other_generation"`` after it), and the first
  level whose condition holds wins;
* every comparator is symmetric: ``level_of(a, b) == level_of(b, a)``.

The level functions are the hot loop of batch matching: they test exact
equality first (most true pairs agree exactly), use no regex, and reach for
Jaro-Winkler (cached) only when cheaper tests have failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from payerbridge.identity.demographics.nicknames import are_name_variants
from payerbridge.identity.matching.similarity import (
    edit_distance_at_most,
    is_one_edit_apart,
    jaro_winkler,
)
from payerbridge.identity.model import StandardRecord

__all__ = [
    "Comparator",
    "LevelFunction",
    "birth_date",
    "exact_only",
    "family_name",
    "given_name",
    "member_id",
    "middle_name",
    "phone",
    "postal_code",
    "sex",
    "ssn",
    "street_address",
]

LevelFunction = Callable[[StandardRecord, StandardRecord], int]


@dataclass(frozen=True, slots=True)
class Comparator:
    """A level function with the names of the levels it returns (index 0 is ``"null"``).

    ``parameters`` are the settings baked into the function (thresholds); they
    are part of a model's spec fingerprint, so a model trained with one
    threshold is never silently used with another.
    """

    kind: str
    level_names: tuple[str, ...]
    level_of: LevelFunction
    parameters: tuple[tuple[str, float], ...] = ()


# The levels of ``given_name``, by the numbers its level function returns.
_GIVEN_NAME_LEVELS = (
    "null",
    "exact",
    "nickname",
    "written_as_one",
    "name_variant",
    "jaro_winkler",
    "one_edit",
    "initial",
    "given_name_token",
    "swapped",
    "similar",
    "other_middle_name",
    "misspelling",
    "else",
)


def given_name(jaro_winkler_threshold: float = 0.92, similar_threshold: float = 0.8) -> Comparator:
    """First given name: exact, nickname, written as one, name variant, Jaro-Winkler, one
    edit, initial, other given name, swapped with the surname, similar, other middle name,
    misspelling, else.

    ``written_as_one`` is one side's given names run together as its first name on the other
    side (María Ámbar as "Mariaambar", Mei Ling as "Meiling", Jean Paul as Jean-Paul): the
    same letters in the same order, so the same name, which no sibling's name is.
    ``one_edit`` catches the single typos in short names that Jaro-Winkler
    scores low ("mia"/"mai" is 0.56); ``initial`` is one side giving only an
    initial that the other's name starts with ("J." and "James");
    ``given_name_token`` is one side's first name being another given name (a
    middle name, or a part of a hyphenated first name) of the other side, as
    when someone goes by their middle name. ``name_variant`` is a relation the
    wider ``nicknames`` dataset knows and our own table does not (see
    ``nicknames``). ``swapped`` is given and family
    name entered the other way round (both must agree crosswise). ``similar``
    is two typos or a Jaro-Winkler above ``similar_threshold``: too far for a
    typo of one keystroke, too close to call the names different (a sibling's
    name is as likely), so it is no conflict but needs an identifier to confirm.
    ``other_middle_name`` is a first name that agrees (or a nickname of it) while
    both sides give middle names, or the rest of a compound name, and none of them
    agrees, not even as an initial: brothers Juan Pablo and Juan Carlos, sisters
    María José and María Fernanda. Not a conflict (forms garble middle names),
    but it needs an identifier to confirm. A compound first name written as one
    ("María Elena") against its first word alone ("María") is ``given_name_token``:
    the same woman, shortening her name, or her twin sister María.
    ``misspelling`` is never found here: it is what the plan's own given names make of
    a typo level (``MatchModel.population_levels``), when one side's name is one the
    members hold and the other's is held by none of them.
    """

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.first_name, b.first_name
        if not x or not y:
            return 0
        if x == y:
            return _whole_first_name(a, b, 1)
        roots = b.first_name_roots
        for root in a.first_name_roots:  # a loop: any(<genexpr>) costs more here
            if root in roots:
                return _whole_first_name(a, b, 2)
        if len(x) == 1 or len(y) == 1:
            return 7 if x[0] == y[0] else 13
        if _written_as_one(x, b) or _written_as_one(y, a):
            return 3
        if are_name_variants(x, y):
            return 4
        similarity = jaro_winkler(x, y)
        if similarity >= jaro_winkler_threshold:
            return 5
        if len(x) > 2 and len(y) > 2 and is_one_edit_apart(x, y):
            return 6
        if x in b.given_name_tokens or y in a.given_name_tokens:
            return 8
        if _is_swapped(a, b):
            return 9
        if similarity >= similar_threshold or (
            len(x) > 4 and len(y) > 4 and edit_distance_at_most(x, y, 2)
        ):
            return 10
        return 13

    return Comparator(
        "given_name",
        _GIVEN_NAME_LEVELS,
        level_of,
        (("jaro_winkler", jaro_winkler_threshold), ("similar", similar_threshold)),
    )


def _whole_first_name(a: StandardRecord, b: StandardRecord, level: int) -> int:
    """``level`` (exact, nickname) when the first names agree as a whole; ``other_middle_name``
    when both give middle names and none agrees; ``given_name_token`` when one side's first
    name is compound ("María Elena") and the other holds only its first word ("María"):
    the same woman, shortening her name, or her sister María."""
    if not _middle_names_agree(a, b):
        return 11
    if not (_compound_held(a, b) and _compound_held(b, a)):
        return 8
    return level


def _written_as_one(name: str, other: StandardRecord) -> bool:
    """``name`` is ``other``'s first name followed by one of its other given names, as one
    word ("mariaambar" for María Ámbar)."""
    first = other.first_name
    if first is None or len(name) <= len(first) or not name.startswith(first):
        return False
    return name[len(first) :] in other.middle_names


def _compound_held(a: StandardRecord, b: StandardRecord) -> bool:
    """Every word of ``a``'s compound first name is among ``b``'s given names (or is the
    initial of one of them)."""
    rest = a.compound_first_name
    if not rest:
        return True
    held = b.given_name_tokens
    starts = {name[0] for name in held}
    return all(
        word in held or word[0] in held or (len(word) == 1 and word in starts) for word in rest
    )


def _middle_names_agree(a: StandardRecord, b: StandardRecord) -> bool:
    """Whether middle names leave the two free to be one person: one side gives none, or a
    middle name (or its initial) is on both sides."""
    left, right = a.middle_names, b.middle_names
    if not left or not right or not left.isdisjoint(right):
        return True
    return _initial_agrees(left, right) or _initial_agrees(right, left)


def _initial_agrees(names: frozenset[str], others: frozenset[str]) -> bool:
    """A one-letter name among ``names`` that starts one of ``others``."""
    starts = {name[0] for name in others}
    return any(len(name) == 1 and name in starts for name in names)


def _is_swapped(a: StandardRecord, b: StandardRecord) -> bool:
    """Given and family name crosswise equal: one side entered them the other way round."""
    return a.first_name == b.family_name and a.family_name == b.first_name


def middle_name() -> Comparator:
    """Middle names (or the rest of a compound given name): a full name on both sides,
    an initial that starts a name on the other side, else.

    Compared only when both sides give one: most forms leave it out, so a missing
    middle name says nothing. Middle names in full on both sides, one side's all among
    the other's, are person-level evidence (siblings seldom share a middle name);
    ``shared`` is one name in common while each side gives another the other lacks
    (twins Juan José Pablo and Juan Pablo Ricardo, with a compound first name); none
    shared while both give one is the disagreement the given-name level
    ``other_middle_name`` holds back as well.
    """
    names = ("null", "exact", "shared", "initial", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        left, right = a.middle_names, b.middle_names
        if not left or not right:
            return 0
        full_left = {n for n in left if len(n) > 1}
        full_right = {n for n in right if len(n) > 1}
        if not full_left.isdisjoint(full_right):
            return 1 if full_left <= full_right or full_right <= full_left else 2
        return 3 if _initial_agrees(left, right) or _initial_agrees(right, left) else 4

    return Comparator("middle_name", names, level_of)


def family_name(jaro_winkler_threshold: float = 0.92) -> Comparator:
    """Surname: exact, shared token (hyphenated, multi-part, married), Jaro-Winkler,
    one edit, swapped with the given name, else.

    ``one_edit`` catches the single typos that Jaro-Winkler scores low, in short
    names or early in the name ("boda"/"boada", "qliroz"/"quiroz")."""
    names = ("null", "exact", "token_overlap", "jaro_winkler", "one_edit", "swapped", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.family_name, b.family_name
        if not x or not y:
            return 0
        if x == y:
            return 1
        if not a.family_name_tokens.isdisjoint(b.family_name_tokens):
            return 2
        if jaro_winkler(x, y) >= jaro_winkler_threshold:
            return 3
        if len(x) > 2 and len(y) > 2 and is_one_edit_apart(x, y):
            return 4
        return 5 if _is_swapped(a, b) else 6

    return Comparator("family_name", names, level_of, (("jaro_winkler", jaro_winkler_threshold),))


# Birth years this far apart are a generation apart: parent and child, never a typo.
_GENERATION_YEARS = 15


def birth_date() -> Comparator:
    """Birth date: exact, day and month swapped, one typo, year off by one or ten, day
    defaulted, else, another generation.

    ``one_typo`` is one substitution or one swap of adjacent digits in YYYYMMDD;
    ``year_off`` keeps month and day and moves the year by 1 or 10 (1989 for 1990);
    ``day_defaulted`` is the same year and month where one side records the day as 01,
    or the same year where one side records 01-01 (a form that knew only part of the
    date). Siblings other than twins are not born in the same month.
    ``other_generation`` is dates a generation apart, even when one digit apart: 1955
    and 1995 is a father and his namesake son (Sr and Jr) far more often than a typo.
    """
    names = (
        "null",
        "exact",
        "transposed_day_month",
        "one_typo",
        "year_off",
        "day_defaulted",
        "else",
        "other_generation",
    )

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.birth_date, b.birth_date
        if not x or not y:
            return 0
        if x == y:
            return 1
        if abs(int(x[:4]) - int(y[:4])) >= _GENERATION_YEARS:
            return 7
        if x[:4] == y[:4] and x[4:6] == y[6:8] and x[6:8] == y[4:6]:
            return 2
        if is_one_edit_apart(x, y):
            return 3
        if x[4:] == y[4:] and abs(int(x[:4]) - int(y[:4])) in (1, 10):
            return 4
        if x[:4] == y[:4] and (
            (x[4:6] == y[4:6] and "01" in (x[6:], y[6:])) or "0101" in (x[4:], y[4:])
        ):
            return 5
        return 6

    return Comparator("birth_date", names, level_of)


def exact_only(field: str) -> Comparator:
    """Agree exactly or not at all (sex, subscriber id, generational suffix)."""
    names = ("null", "exact", "else")
    value_of = attrgetter(field)

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = value_of(a), value_of(b)
        if not x or not y:
            return 0
        return 1 if x == y else 2

    return Comparator(f"exact:{field}", names, level_of)


def sex() -> Comparator:
    """Sex: exact or else."""
    return exact_only("sex")


def postal_code() -> Comparator:
    """5-digit ZIP: exact, same 3-digit ZIP prefix (a move within the area), else."""
    names = ("null", "exact", "same_zip3", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.postal_code, b.postal_code
        if not x or not y:
            return 0
        if x == y:
            return 1
        return 2 if x[:3] == y[:3] else 3

    return Comparator("postal_code", names, level_of)


def street_address(jaro_winkler_threshold: float = 0.88) -> Comparator:
    """Street address: exact (with unit), same house and street, same house and similar street.

    Without a street on either side there is nothing to compare. House numbers
    must be equal (both missing counts as equal: rural routes, PO boxes without
    a number), since neighbours share everything else.
    """
    names = ("null", "exact", "same_house_and_street", "same_house_similar_street", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.street, b.street
        if not x or not y:
            return 0
        if a.house_number != b.house_number:
            return 4
        if x == y:
            return 1 if a.unit == b.unit else 2
        return 3 if jaro_winkler(x, y) >= jaro_winkler_threshold else 4

    return Comparator(
        "street_address", names, level_of, (("jaro_winkler", jaro_winkler_threshold),)
    )


def phone() -> Comparator:
    """10-digit phone: exact, one typo, the same area code (a new number in the same area:
    most moves are local), else."""
    names = ("null", "exact", "one_typo", "same_area_code", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.phone, b.phone
        if not x or not y:
            return 0
        if x == y:
            return 1
        if is_one_edit_apart(x, y):
            return 2
        return 3 if x[:3] == y[:3] else 4

    return Comparator("phone", names, level_of)


def member_id() -> Comparator:
    """Member id: exact, exact on the subscriber's card, one typo, the subscriber's id, else.

    ``exact_subscriber_card`` is agreement on a number that is also the
    subscriber id (either side's member id is its own subscriber id): the
    subscriber's own card, which relatives who never enrolled show too (a twin
    of the subscriber, a spouse on the family's card). It confirms the
    subscriber only together with a first name that agrees without a typo.

    ``is_subscriber_id`` is one side's member id being the other side's
    subscriber id: a dependent whose card (or whose request) shows the
    subscriber's number. It says "same household", not "same person", which
    is why ``spec`` marks that level household-shared. It wins over
    ``one_typo`` when both hold (the exception to "first level wins").
    """
    names = ("null", "exact", "exact_subscriber_card", "one_typo", "is_subscriber_id", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.member_id, b.member_id
        if not x or not y:
            return 0
        if x == y:
            return 2 if x in (a.subscriber_id, b.subscriber_id) else 1
        # Before the typo test: a household's card numbers are often sequential (M100 for the
        # subscriber, M104 for a son), so the subscriber's number is one edit from a
        # dependent's and would pass for a typo of the dependent's own card.
        if x == b.subscriber_id or y == a.subscriber_id:
            return 4
        if is_one_edit_apart(x, y):
            return 3
        return 5

    return Comparator("member_id", names, level_of)


def ssn() -> Comparator:
    """SSN: exact, exact but carried from the subscriber, one typo, else.

    ``carried`` is agreement on an SSN that either record holds as its
    subscriber's (a dependent's record with the head of household's SSN): it
    ties the pair to one household, not to one person. A carried SSN that
    differs from the other side's is no evidence either way (``null``): it was
    never this person's number.
    """
    names = ("null", "exact", "carried", "one_typo", "else")

    def level_of(a: StandardRecord, b: StandardRecord) -> int:
        x, y = a.ssn, b.ssn
        if not x or not y:
            return 0
        carried = a.ssn_carried or b.ssn_carried
        if x == y:
            return 2 if carried else 1
        if carried:  # the subscriber's number against the person's own: no evidence
            return 0
        return 3 if is_one_edit_apart(x, y) else 4

    return Comparator("ssn", names, level_of)
