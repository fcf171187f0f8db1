"""Deterministic match rules and the household guards, over comparison vectors.

Rules run before probabilistic scoring: a rule that fires makes a candidate
auto-acceptable whatever its probability (card data a payer trusts, such as
member id plus birth date plus a first name that agrees). Rules are data: each
names, per comparison, the levels it accepts, and may name alternatives of
which one must hold (the household's card: its subscriber id, or the
subscriber's number shown as the member id).

The household-card rules rest on what tells a household's members apart: the
first name and the birth date. Twins share a birth date and not a first name;
a namesake father and son (Jr/Sr) share a first name and are a generation
apart, which the birth-date comparison calls a conflict even when one digit
separates the dates. So once the card places a request in a household, a
first name that agrees exactly (or by nickname) and a birth date that agrees
exactly, or up to one typo when the surname agrees too, pick out one member.
A first-name typo never does: a twin who never enrolled is named alike
(Mia and Mila) often enough. The home (street address and ZIP code) places a
request in a household as the card does, for the full name with a birth-date
slip, where no relative but a namesake a generation away could stand.

The rules of the member's own card number (never the subscriber's card) each
name the one disagreement they outvote (``tolerates``): a first name entered
wrong, a birth-date slip, a birth date wrong or missing. Relatives share the
household's card, address and surname, and a twin the birth date, but none
holds the member's own card number. An SSN is a household's too (a dependent or
a newborn enrolled under a parent's or a sibling's, a relative who never
enrolled showing it), so it confirms a person only together with her own
evidence, both of it: a first name that is the same name (as written, by
nickname, run together, swapped with the surname, or a misspelling the plan's
names tell) and a birth date exact or one slip away. It outvotes nothing,
fills in nothing missing, and confirms no first name in part.

Guards apply to rule matches and to scored matches alike, except those a
fired rule tolerates, those a guard waiver lifts (``GUARD_WAIVERS``: with the
own identifier agreeing, the weight decides), and, in a population where the
trained model finds no households, the guards against relatives
(``RELATIVE_GUARDS``). A pair with a guard violation is never auto-accepted; at
most it is reviewed:

* ``given_name_conflict``: the given names disagree beyond typo, nickname and
  initial tolerance (twins, parent and child), or agree only approximately
  while sex disagrees (boy/girl twins Alexander and Alexandra);
* ``given_name_unconfirmed``: the given names agree only up to a typo, an
  initial, a dataset variant or a partial compound name, and neither the
  member's own card number (not the subscriber's card, not an SSN: a twin
  named alike carries her sister's) nor a middle name in full agrees (beside
  the SSN and the exact birth date, ``decision`` takes a middle name used as
  the first). Twins are named alike often enough (Mia and Mila) that a near
  miss on the name, with the birth date and household agreeing, is as much
  the twin as a typo. Not a ``misspelling``: a
  typo that the plan's own given names tell from a twin's name (``scoring``),
  which the weight decides;
* ``birth_date_conflict``: the birth dates disagree beyond one typo, a
  day/month swap or a year off by one or ten (Jr and Sr, siblings);
* ``suffix_conflict``: both give a generational suffix and they differ (Jr/Sr);
* ``member_id_mismatch``: the card's member id is neither this member's
  (not even up to a typo) nor their subscriber's, and another candidate holds
  it: the card names someone else (``decision`` drops the guard when no
  candidate holds the number; the disagreement is then weighed);
* ``given_name_missing`` / ``birth_date_missing``: without both there is no
  person-level evidence, only household and card evidence;
* ``ssn_mismatch``: both sides hold an SSN, neither carried, and they differ
  beyond a typo: each holds her own, and they are not the same;
* ``household_evidence_only``: identifiers a household shares agree
  (``HOUSEHOLD_IDENTIFIERS``: an SSN, the family's card, the surname, the home)
  while the person's own evidence disagrees (``RuleBook.own_evidence_against``:
  another first name; a birth date beyond a slip, whatever the first name; a
  first name in part beside a birth date that is not exact) and the member's own
  card number does not agree: a sibling, a parent, a newborn or a twin who never
  enrolled. No rule tolerates it and no waiver lifts it; the evidence lists what
  agreed and what of the person's own did not;
* ``younger_on_shared_ssn``: beside it, the SSN agrees and the request's person
  was born years after the member (``decision`` compares the dates): the
  newborn enrolled on a sibling's SSN, the child on a parent's.

Conflicts (the ``*_conflict`` guards) mark pairs that are different people
as far as the data can tell; ``training`` keeps them out of EM's estimate of
m, since in a population of families most such pairs are relatives.

Both rules and guards work on comparison vectors, never on record values, so
they can be explained in evidence by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payerbridge.identity.matching.spec import DEFAULT_SPEC, ComparisonSpec

__all__ = [
    "DETERMINISTIC_RULES",
    "GIVEN_NAME_UNCONFIRMED",
    "GUARD_WAIVERS",
    "HOUSEHOLD_EVIDENCE_ONLY",
    "HOUSEHOLD_IDENTIFIERS",
    "RELATIVE_GUARDS",
    "SSN_MISMATCH",
    "YOUNGER_ON_SHARED_SSN",
    "DeterministicRule",
    "GuardWaiver",
    "RuleBook",
]

# Given-name levels that are agreement only up to a tolerance; a sex
# disagreement on top of one of them is a conflict.
_APPROXIMATE_GIVEN_NAME = (
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
)
# Of those, the ones a typo (rather than a deliberate nickname) explains; they
# need a person-level identifier to be auto-accepted.
_TYPO_GIVEN_NAME = (
    "name_variant",
    "jaro_winkler",
    "one_edit",
    "initial",
    "given_name_token",
    "similar",
    "other_middle_name",
)
# What confirms a given name that agrees only up to a typo: the member's own card number
# (a plan issues it to one person), or a middle name that agrees in full (siblings seldom
# share one, and twins named alike more seldom still). Never an SSN: a household shares it
# (a twin named alike carries her sister's), so it confirms only what is already the
# person's own evidence.
_GIVEN_NAME_CONFIRMATIONS = (("member_id", "exact"), ("middle_name", "exact"))
_REQUIRED_PERSON_EVIDENCE = ("given_name", "birth_date")


@dataclass(frozen=True, slots=True)
class DeterministicRule:
    """A rule fires when every ``requires`` comparison is at one of its accepted levels and,
    if the rule names any, at least one ``requires_any`` comparison is at one of its levels.

    ``tolerates`` names the guards a pair the rule fires for may violate and still be
    auto-accepted: the disagreements the rule's identifier outvotes, said out loud."""

    name: str
    description: str
    requires: tuple[tuple[str, tuple[str, ...]], ...]
    requires_any: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tolerates: tuple[str, ...] = ()


# Member id levels that do not point at someone else: the member's own card, the
# subscriber's card, or none.
_CARD_OF_THE_HOUSEHOLD = ("null", "exact", "exact_subscriber_card", "is_subscriber_id")
# A card that ties the request to the member's household: its subscriber id, or a member id
# that is the member's own or the subscriber's.
_HOUSEHOLD_CARD = (
    ("subscriber_id", ("exact",)),
    ("member_id", ("exact", "exact_subscriber_card", "is_subscriber_id")),
)


# A given name that is the same name: as written, by nickname, or its parts run together.
_SAME_GIVEN_NAME = ("exact", "nickname", "written_as_one")
# A given name that agrees, up to the typos and mix-ups an identifier may confirm.
_GIVEN_NAME_CONFIRMABLE = (
    "exact",
    "nickname",
    "written_as_one",
    "name_variant",
    "jaro_winkler",
    "one_edit",
    "swapped",
    "similar",
    "misspelling",
)
# A birth date near enough to be this person's with one slip: never another generation.
_BIRTH_DATE_NEAR = ("transposed_day_month", "one_typo", "year_off", "day_defaulted")
# The full name agrees and the birth date is one slip away, and the card, if any, names no
# one else: with something that ties the request to the household, one member (relatives who
# share a first name are a generation apart).
_FULL_NAME_BIRTH_DATE_SLIP = (
    ("given_name", _SAME_GIVEN_NAME),
    ("family_name", ("exact", "token_overlap")),
    ("birth_date", ("one_typo", "transposed_day_month", "day_defaulted")),
    ("sex", ("null", "exact")),
    ("member_id", _CARD_OF_THE_HOUSEHOLD),
)
# The same house on the same street.
_RESIDENCE_AGREES = ("exact", "same_house_and_street", "same_house_similar_street")
# A surname that agrees, or was entered in the given name's place.
_FAMILY_NAME_AGREES = ("exact", "token_overlap", "jaro_winkler", "one_edit", "swapped")
# Identifiers a household commonly shares, at the levels where they agree: an SSN (carried
# by dependents, shown by relatives who never enrolled), the family's card, its subscriber
# id, its surname, home and phone. They place a request in a household, never on a person.
HOUSEHOLD_IDENTIFIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ssn", ("exact", "carried")),
    ("member_id", ("exact_subscriber_card", "is_subscriber_id")),
    ("subscriber_id", ("exact",)),
    ("family_name", ("exact", "token_overlap", "jaro_winkler", "one_edit")),
    ("street_address", _RESIDENCE_AGREES),
    ("postal_code", ("exact",)),
    ("phone", ("exact", "one_typo")),
)
# The guard of a pair whose household identifiers agree while the person's own evidence
# disagrees (see ``RuleBook.guard_violations``).
HOUSEHOLD_EVIDENCE_ONLY = "household_evidence_only"
# The guard of a first name that agrees only up to a typo, with nothing of the person's own
# to confirm it.
GIVEN_NAME_UNCONFIRMED = "given_name_unconfirmed"
# The guard of an SSN that disagrees where each side holds its own.
SSN_MISMATCH = "ssn_mismatch"
# Named beside ``household_evidence_only`` where the SSN agrees and the request's person was
# born years after the member: a newborn enrolled on a sibling's SSN, a child on a parent's.
YOUNGER_ON_SHARED_SSN = "younger_on_shared_ssn"


# A given name that is the person's own evidence by itself: the same name as written, by
# nickname, run together, entered in the surname's place, or misspelled as the plan's own
# names tell a typo from a name. Anything less (an initial, a part of the given names, a
# typo the plan cannot tell from a sibling's name) is own evidence only where the person's
# own card number or a middle name in full confirms it (``given_name_unconfirmed``).
_GIVEN_NAME_OWN = (*_SAME_GIVEN_NAME, "misspelling", "swapped")
# A birth date that is the person's own evidence: exact, or one known slip of it.
_BIRTH_DATE_OWN = ("exact", *_BIRTH_DATE_NEAR)


def _own_card_rules() -> tuple[DeterministicRule, ...]:
    """The rules of the member's own card number, which a plan issues to one person: each
    says which one disagreement the number outvotes; none outvotes two, a different sex
    with a different name. Relatives share the household's card, address and surname, and
    a twin the birth date, but none holds the member's own number."""
    wording = "The card's member id (the member's own)"
    return (
        DeterministicRule(
            "member_id_birth_date_given_name",
            f"{wording} and the birth date agree exactly and the first name agrees (up to a "
            "typo, a nickname, a mix-up with the surname)",
            (
                ("member_id", ("exact",)),
                ("birth_date", ("exact",)),
                ("given_name", _GIVEN_NAME_CONFIRMABLE),
            ),
        ),
        _given_name_birth_date_near_rule("member_id", wording),
        DeterministicRule(
            "member_id_birth_date_family_name",
            f"{wording} and the birth date agree, the surname or the street address agrees, "
            "and sex does not disagree; the first name may differ or be missing (a twin "
            "differs by first name, but never holds the member's own card number)",
            (
                ("member_id", ("exact",)),
                ("birth_date", ("exact",)),
                ("sex", ("null", "exact")),
                ("suffix", ("null", "exact")),
            ),
            (("family_name", _FAMILY_NAME_AGREES), ("street_address", _RESIDENCE_AGREES)),
            tolerates=("given_name_conflict", "given_name_missing", "given_name_unconfirmed"),
        ),
        DeterministicRule(
            "member_id_full_name",
            f"{wording}, the first name and the surname agree; the birth date may be wrong "
            "or missing, even a generation away (the subscriber's birth date entered for a "
            "dependent); a namesake father shows the household's card, not his son's own",
            (
                ("member_id", ("exact",)),
                ("given_name", _GIVEN_NAME_CONFIRMABLE),
                ("family_name", _FAMILY_NAME_AGREES),
                ("birth_date", ("null", "else", "other_generation")),
                ("sex", ("null", "exact")),
                ("suffix", ("null", "exact")),
            ),
            tolerates=("birth_date_conflict", "birth_date_missing"),
        ),
    )


def _ssn_rules() -> tuple[DeterministicRule, ...]:
    """The rules of the member's SSN (not one known to be carried). A household shares an
    SSN often enough (a dependent or a newborn enrolled under a parent's or a sibling's, a
    relative who never enrolled showing it) that it confirms a person only together with
    the person's own evidence, both of it: the first name (``_GIVEN_NAME_OWN``) and the
    birth date, exact or one slip away. It outvotes no disagreement and fills in nothing
    missing."""
    wording = "The member's SSN (not one known to be carried)"
    return (
        DeterministicRule(
            "ssn_birth_date_given_name",
            f"{wording} and the birth date agree exactly and the first name is the same name "
            "(as written, by nickname, run together, a misspelling the plan's names tell, a "
            "mix-up with the surname)",
            (
                ("ssn", ("exact",)),
                ("birth_date", ("exact",)),
                ("given_name", _GIVEN_NAME_OWN),
                ("sex", ("null", "exact")),
                ("suffix", ("null", "exact")),
            ),
        ),
        _given_name_birth_date_near_rule("ssn", wording),
    )


def _given_name_birth_date_near_rule(identifier: str, wording: str) -> DeterministicRule:
    return DeterministicRule(
        f"{identifier}_given_name_birth_date_near",
        f"{wording} and the first name agree, and the birth date is one slip away (a typo, "
        "day and month swapped, the year off by one or ten, the day recorded as 01)",
        (
            (identifier, ("exact",)),
            ("given_name", _SAME_GIVEN_NAME),
            ("birth_date", _BIRTH_DATE_NEAR),
            ("sex", ("null", "exact")),
        ),
    )


DETERMINISTIC_RULES: tuple[DeterministicRule, ...] = (
    *_own_card_rules(),
    DeterministicRule(
        "subscriber_card_birth_date_given_name",
        "The subscriber's card number and the birth date agree exactly and the first name "
        "agrees without a typo (relatives show the subscriber's card too)",
        (
            ("member_id", ("exact_subscriber_card",)),
            ("birth_date", ("exact",)),
            ("given_name", _SAME_GIVEN_NAME),
        ),
    ),
    *_ssn_rules(),
    DeterministicRule(
        "household_card_birth_date_given_name",
        "The card names the member's household (its subscriber id, or a member id that is the "
        "subscriber's), the birth date agrees exactly and the first name agrees without a "
        "typo; the surname may differ (it changes with marriage, the card does not)",
        (
            ("birth_date", ("exact",)),
            ("given_name", _SAME_GIVEN_NAME),
            ("sex", ("null", "exact")),
            ("subscriber_id", ("null", "exact")),
            ("member_id", _CARD_OF_THE_HOUSEHOLD),
        ),
        (("subscriber_id", ("exact",)), ("member_id", ("is_subscriber_id",))),
    ),
    DeterministicRule(
        "household_full_name_birth_date_typo",
        "The card ties the request to the member's household, the first name and the "
        "surname agree, and the birth date is one typo or a day/month swap away (relatives "
        "who share a first name are a generation apart)",
        _FULL_NAME_BIRTH_DATE_SLIP,
        _HOUSEHOLD_CARD,
    ),
    DeterministicRule(
        "residence_full_name_birth_date_typo",
        "The street address and ZIP code tie the request to the member's household as a card "
        "would, the first name and the surname agree, and the birth date is one typo, a "
        "day/month swap or the day recorded as 01 away; the card, if any, names no one else "
        "(relatives who share a first name are a generation apart)",
        (
            *_FULL_NAME_BIRTH_DATE_SLIP,
            ("suffix", ("null", "exact")),
            ("street_address", ("exact",)),
            ("postal_code", ("exact",)),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class GuardWaiver:
    """Guards a pair need not pass when its ``requires`` (and one of its ``requires_any``)
    hold. Unlike a rule it accepts nothing by itself: the pair's match weight must still
    reach the policy's auto-match band."""

    name: str
    description: str
    requires: tuple[tuple[str, tuple[str, ...]], ...]
    requires_any: tuple[tuple[str, tuple[str, ...]], ...]
    waives: tuple[str, ...]


# The guards that stand between a member and their relatives (a twin named alike, a
# sibling, a parent): lifted where the members share no households at all (a registry of
# unrelated people, as the trained model's household rate tells), where the weight decides.
# A different generational suffix stays a guard everywhere.
RELATIVE_GUARDS = frozenset(
    {
        HOUSEHOLD_EVIDENCE_ONLY,
        YOUNGER_ON_SHARED_SSN,
        "given_name_conflict",
        GIVEN_NAME_UNCONFIRMED,
        "given_name_missing",
        "birth_date_conflict",
        "birth_date_missing",
    }
)

GUARD_WAIVERS: tuple[GuardWaiver, ...] = (
    GuardWaiver(
        "own_identifier",
        "The member's own card number agrees exactly: relatives share a household's card, "
        "address and surname, and twins a birth date, but none holds the member's own "
        "number, so the guards against relatives give way to the weight of the evidence (a "
        "first name or birth date entered wrong, or missing, costs what it costs); sex must "
        "not disagree",
        (("sex", ("null", "exact")), ("suffix", ("null", "exact"))),
        (("member_id", ("exact",)),),
        (
            "given_name_conflict",
            "given_name_missing",
            GIVEN_NAME_UNCONFIRMED,
            "birth_date_conflict",
            "birth_date_missing",
        ),
    ),
)


def _levels(
    spec: ComparisonSpec, comparison: str, names: Sequence[str]
) -> tuple[int, frozenset[int]]:
    """(position of the comparison in vectors, indices of the named levels)."""
    index = spec.index(comparison)
    return index, frozenset(spec.comparisons[index].level_index(name) for name in names)


class RuleBook:
    """Rules and guards compiled to level indices of one spec (cheap to evaluate)."""

    __slots__ = (
        "_approximate_given",
        "_confirmations",
        "_conflicts",
        "_required",
        "_rules",
        "_member_id_else",
        "_sex_else",
        "_ssn_else",
        "_given_else",
        "_given_same",
        "_birth_own",
        "_birth_exact",
        "_ssn_shared",
        "_ssn_exact",
        "given_index",
        "given_token",
        "_middle_else",
        "_own_card",
        "_household",
        "_typo_given",
        "_waivers",
        "card_holder_levels",
        "member_id_exact",
        "member_id_family_card",
        "member_id_index",
        "ssn_else",
        "ssn_index",
        "rules",
        "spec",
    )

    def __init__(
        self,
        spec: ComparisonSpec = DEFAULT_SPEC,
        rules: tuple[DeterministicRule, ...] = DETERMINISTIC_RULES,
        waivers: tuple[GuardWaiver, ...] = GUARD_WAIVERS,
    ) -> None:
        self.spec = spec
        self.rules = rules
        self._waivers = tuple(
            (
                tuple(_levels(spec, name, levels) for name, levels in waiver.requires),
                tuple(_levels(spec, name, levels) for name, levels in waiver.requires_any),
                frozenset(waiver.waives),
            )
            for waiver in waivers
        )
        self._rules = tuple(
            (
                rule.name,
                tuple(_levels(spec, name, levels) for name, levels in rule.requires),
                tuple(_levels(spec, name, levels) for name, levels in rule.requires_any),
                frozenset(rule.tolerates),
            )
            for rule in rules
        )
        conflicting = {
            c.name: [lv.name for lv in c.levels if lv.is_conflict] for c in spec.comparisons
        }
        self._conflicts = tuple(
            (f"{name}_conflict", _levels(spec, name, levels))
            for name, levels in conflicting.items()
            if levels
        )
        self._required = tuple(
            (f"{name}_missing", _levels(spec, name, ["null"])) for name in _REQUIRED_PERSON_EVIDENCE
        )
        self._approximate_given = _levels(spec, "given_name", _APPROXIMATE_GIVEN_NAME)
        self._typo_given = _levels(spec, "given_name", _TYPO_GIVEN_NAME)
        self._confirmations = tuple(
            _levels(spec, name, [level]) for name, level in _GIVEN_NAME_CONFIRMATIONS
        )
        self._sex_else = _levels(spec, "sex", ["else"])
        self._ssn_else = _levels(spec, "ssn", ["else"])
        self._given_else = _levels(spec, "given_name", ["else"])
        self._given_same = _levels(spec, "given_name", (*_SAME_GIVEN_NAME, "swapped"))
        self._birth_own = _levels(spec, "birth_date", _BIRTH_DATE_OWN)
        self._birth_exact = _levels(spec, "birth_date", ["exact"])
        self._ssn_shared = _levels(spec, "ssn", ["exact", "carried"])
        self._ssn_exact = _levels(spec, "ssn", ["exact"])
        self.given_index = spec.index("given_name")
        self.given_token = spec.comparisons[self.given_index].level_index("given_name_token")
        self._middle_else = _levels(spec, "middle_name", ["shared", "else"])
        self._own_card = _levels(spec, "member_id", ["exact"])
        self._household = tuple(
            (name, _levels(spec, name, levels))
            for name, levels in HOUSEHOLD_IDENTIFIERS
            if name in spec.names
        )
        self._member_id_else = _levels(spec, "member_id", ["else"])
        # A candidate at one of these member id levels holds the number the card shows.
        self.member_id_index, self.card_holder_levels = _levels(
            spec, "member_id", ["exact", "exact_subscriber_card"]
        )
        # Where the plan's members show a card number or an SSN to be a household's
        # (``decision``), its levels are moved to the household's: a card number several
        # members hold as their own is the family's card; an SSN the request shows that a
        # member of this member's household holds is carried (no evidence either way).
        self.member_id_exact = spec.comparisons[self.member_id_index].level_index("exact")
        self.member_id_family_card = spec.comparisons[self.member_id_index].level_index(
            "exact_subscriber_card"
        )
        self.ssn_index, (self.ssn_else,) = self._ssn_else[0], tuple(self._ssn_else[1])

    def fired_rule(self, levels: Sequence[int]) -> str | None:
        """The first deterministic rule the comparison vector satisfies, if any."""
        fired = self.fired(levels)
        return fired[0] if fired else None

    def fired(self, levels: Sequence[int]) -> tuple[str, frozenset[str]] | None:
        """The first rule the comparison vector satisfies, with the guards it tolerates."""
        for name, conditions, alternatives, tolerated in self._rules:
            if _holds(levels, conditions, alternatives):
                return name, tolerated
        return None

    def waived(self, levels: Sequence[int]) -> frozenset[str]:
        """The guards the comparison vector's waivers lift (see ``GuardWaiver``)."""
        lifted: frozenset[str] = frozenset()
        for conditions, alternatives, waives in self._waivers:
            if _holds(levels, conditions, alternatives):
                lifted |= waives
        return lifted

    def conflicts(self, levels: Sequence[int]) -> tuple[str, ...]:
        """The ``*_conflict`` guards the pair violates: different people, as far as data tell."""
        found = [name for name, (index, bad) in self._conflicts if levels[index] in bad]
        approximate = _at(levels, self._approximate_given)  # never "else", so never found yet
        if approximate and _at(levels, self._sex_else):
            found.append("given_name_conflict")
        return tuple(found)

    def guard_violations(
        self, levels: Sequence[int], conflicts: tuple[str, ...] | None = None
    ) -> tuple[str, ...]:
        """Why this pair may not be auto-accepted; empty when it may.

        ``conflicts`` passes ``self.conflicts(levels)`` when the caller has it already.
        """
        violations = list(self.conflicts(levels) if conflicts is None else conflicts)
        if _at(levels, self._typo_given) and not self._given_name_confirmed(levels):
            violations.append(GIVEN_NAME_UNCONFIRMED)
        if _at(levels, self._member_id_else):
            violations.append("member_id_mismatch")
        if _at(levels, self._ssn_else):
            violations.append(SSN_MISMATCH)
        violations.extend(name for name, missing in self._required if _at(levels, missing))
        if self.own_evidence_against(levels) and self._any_household(levels):
            violations.append(HOUSEHOLD_EVIDENCE_ONLY)
        return tuple(violations)

    def guard_names(self) -> tuple[str, ...]:
        """Every guard ``guard_violations`` may name, in its order (the runbook
        ``docs/runbooks/guard_violation.md`` says what each means)."""
        return (
            *(name for name, _ in self._conflicts),
            GIVEN_NAME_UNCONFIRMED,
            "member_id_mismatch",
            SSN_MISMATCH,
            *(name for name, _ in self._required),
            HOUSEHOLD_EVIDENCE_ONLY,
            YOUNGER_ON_SHARED_SSN,
        )

    def _any_household(self, levels: Sequence[int]) -> bool:
        """Whether some identifier a household shares agrees (a loop: this runs for every
        candidate whose own evidence disagrees)."""
        for _, (index, agreeing) in self._household:  # noqa: SIM110 - a loop, as said
            if levels[index] in agreeing:
                return True
        return False

    def _given_name_confirmed(self, levels: Sequence[int]) -> bool:
        for confirmation in self._confirmations:  # noqa: SIM110 - a loop, as _holds says
            if _at(levels, confirmation):
                return True
        return False

    def own_evidence_against(self, levels: Sequence[int]) -> tuple[str, ...]:
        """The person's own evidence that speaks against her being the member, by comparison
        name, where the member's own card number does not agree (it names one person;
        nothing else a household may share does): ``given_name`` when the first name is
        another name; ``birth_date`` when the birth dates are beyond a slip (years apart, a
        generation); both when the first name agrees only in part (a misspelling, a typo,
        an initial) and the birth date is not exact (two departures: a sibling's as much as
        hers). A first name in part beside the exact date is ``given_name_unconfirmed``'s
        to judge, and a missing one the ``*_missing`` guards'."""
        if _at(levels, self._own_card):
            return ()
        given = levels[self.given_index]
        birth = levels[self._birth_own[0]]
        if given in self._given_same[1] and birth in self._birth_own[1]:
            return ()  # the common case, first
        # The date: exact or one slip away agrees; beyond a slip it is another person's.
        birth_against = birth != 0 and birth not in self._birth_own[1]
        if given == 0 or given in self._given_same[1]:
            given_against = False
        elif given in self._given_else[1]:
            given_against = True
        else:  # in part (a misspelling, a typo, an initial): ``given_name_unconfirmed`` says
            # whether it needs confirming; beside a date that is not exact, two departures.
            given_against = birth != 0 and birth not in self._birth_exact[1]
            birth_against = birth_against or given_against
        return (
            *(("given_name",) if given_against else ()),
            *(("birth_date",) if birth_against else ()),
        )

    def ssn_beside_own_date(self, levels: Sequence[int]) -> bool:
        """Whether the SSN and the birth date agree exactly and sex and the middle names do
        not disagree: where ``decision`` lets the SSN confirm a middle name used as the
        first, which a twin carrying the SSN is seldom given."""
        return (
            _at(levels, self._ssn_exact)
            and _at(levels, self._birth_exact)
            and not _at(levels, self._sex_else)
            and not _at(levels, self._middle_else)
        )

    def younger_on_shared_ssn(self, levels: Sequence[int]) -> bool:
        """Whether the pair's SSN agrees (exact or carried) while the birth dates are beyond
        a slip: with the request's person born years after the member, the pattern of a
        newborn enrolled on a sibling's SSN (``decision`` compares the dates)."""
        birth = levels[self._birth_own[0]]
        return _at(levels, self._ssn_shared) and birth != 0 and birth not in self._birth_own[1]

    def household_agreements(self, levels: Sequence[int]) -> tuple[str, ...]:
        """The identifiers a household shares that agree for this pair (``HOUSEHOLD_IDENTIFIERS``),
        by comparison name."""
        return tuple(name for name, where in self._household if _at(levels, where))


def _holds(
    levels: Sequence[int],
    conditions: tuple[tuple[int, frozenset[int]], ...],
    alternatives: tuple[tuple[int, frozenset[int]], ...],
) -> bool:
    """Every condition holds and, if there are alternatives, one of them does. Plain loops:
    this runs for every rule and every candidate, and all(<genexpr>) cost a sixth of a
    decision."""
    for index, accepted in conditions:
        if levels[index] not in accepted:
            return False
    if not alternatives:
        return True
    for index, accepted in alternatives:  # noqa: SIM110 - a loop, as the docstring says
        if levels[index] in accepted:
            return True
    return False


def _at(levels: Sequence[int], where: tuple[int, frozenset[int]]) -> bool:
    """Whether the vector's level for ``where``'s comparison is one of ``where``'s levels."""
    return levels[where[0]] in where[1]
