"""Standardisation of raw demographic and card values into a ``StandardRecord``.

Matching compares standardised values only, and standardises each record once
(when a member is loaded, or when a request arrives), never inside the scoring
loop. That is why ``StandardRecord`` holds precomputed comparison features
(nickname roots, surname tokens, the parts of an address) next to the values.

What each field becomes:

* names: NFKD accents stripped, case folded, punctuation dropped. The first
  given name keeps hyphenated parts joined (``"Anne-Marie"`` -> ``"annemarie"``)
  and gets its nickname roots (``"bill"`` -> ``("william",)``); every given part
  goes into ``given_name_tokens``, and the words after the first name (middle
  names, the rest of a compound name such as "María José") into ``middle_names``.
  Surnames are joined for exact comparison (``"De la Cruz"`` == ``"Delacruz"``)
  and split into tokens, particles dropped, for partial agreement
  (``"Garcia-Lopez"`` shares ``"lopez"`` with ``"Lopez"``); previous (maiden,
  old) surnames add their tokens.
* generational suffixes (Jr, Sr, II, III...) are a field of their own, taken
  from the suffix list or from a trailing word of the surname or given names.
* dates: ``"YYYY-MM-DD"`` -> ``"YYYYMMDD"``; partial or impossible dates -> None.
* sex: ``"M"``, ``"F"`` or ``"O"``; unknown -> None.
* ZIP: the 5-digit ZIP (ZIP+4 stripped, lost leading zeros restored).
* phone: the last 10 digits. Ids: upper-case alphanumerics, separators dropped.
* SSN: 9 digits, None for numbers the SSA never issues.

None means "not known": a missing value is never evidence either way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from payerbridge.identity.demographics.addresses import standard_street_address
from payerbridge.identity.demographics.nicknames import name_roots
from payerbridge.identity.model import StandardRecord, redacted_repr

__all__ = [
    "Demographics",
    "fold",
    "standard_birth_date",
    "standard_identifier",
    "standard_phone",
    "standard_postal_code",
    "standard_record",
    "standard_sex",
    "standard_ssn",
    "standard_suffix",
]


# Letters NFKD does not decompose into a base letter plus a combining mark.
_LETTER_FOLDS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "þ": "th"})
_APOSTROPHES = str.maketrans("", "", "'’`.")
_WORD = re.compile(r"[a-z0-9]+")
_NOT_DIGIT = re.compile(r"[^0-9]")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")
_SUFFIXES = {
    "jr": "JR",
    "junior": "JR",
    "sr": "SR",
    "senior": "SR",
    "ii": "II",
    "2nd": "II",
    "iii": "III",
    "3rd": "III",
    "iv": "IV",
    "4th": "IV",
    "v": "V",
    "5th": "V",
}
# A trailing "v" in a surname or given list is more often an initial than "the fifth".
_TRAILING_SUFFIXES = frozenset(_SUFFIXES) - {"v", "5th"}
# Surname particles: shared by unrelated families, so never evidence on their own.
_PARTICLES = frozenset(
    {
        "de",
        "del",
        "della",
        "der",
        "den",
        "di",
        "da",
        "das",
        "dos",
        "du",
        "la",
        "le",
        "las",
        "los",
        "van",
        "von",
        "ter",
        "st",
        "saint",
        "y",
        "e",
        "bin",
        "ibn",
        "al",
        "el",
    }
)
_INVALID_SSNS = frozenset({"123456789", "078051120", "219099999", "987654320"})


def fold(value: str) -> str:
    """Accent-free, case-folded text: ``"García"`` -> ``"garcia"``, ``"Øst"`` -> ``"ost"``."""
    if value.isascii():  # most names: nothing to decompose (and 20x faster)
        return value.casefold()
    decomposed = unicodedata.normalize("NFKD", value.casefold().translate(_LETTER_FOLDS))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _words(value: str) -> list[str]:
    """Words of a name part; apostrophes and periods join (``"O'Brien"`` -> ``obrien``)."""
    return _WORD.findall(fold(value).translate(_APOSTROPHES))


def standard_suffix(value: str | None) -> str | None:
    """``"Jr."`` -> ``"JR"``, ``"3rd"`` -> ``"III"``; academic and unknown suffixes -> None."""
    if not isinstance(value, str):
        return None
    words = _words(value)
    return _SUFFIXES.get(words[0]) if len(words) == 1 else None


def _split_trailing_suffix(words: list[str]) -> tuple[list[str], str | None]:
    if len(words) > 1 and words[-1] in _TRAILING_SUFFIXES:
        return words[:-1], _SUFFIXES[words[-1]]
    return words, None


def _given_names(
    given: Sequence[str],
) -> tuple[str | None, frozenset[str], frozenset[str], frozenset[str], str | None]:
    """(first name, every given-name part, the words after the first name, the words after
    the first name within the first given name itself, suffix found among the given names)."""
    first: str | None = None
    tokens: set[str] = set()
    middle: set[str] = set()
    compound: set[str] = set()
    suffix = None
    for position, entry in enumerate(name for name in given if isinstance(name, str)):
        for chunk_position, chunk in enumerate(fold(entry).split()):
            parts = _WORD.findall(chunk.translate(_APOSTROPHES))
            if not parts:
                continue
            joined = "".join(parts)
            if (position or chunk_position) and joined in _TRAILING_SUFFIXES:
                suffix = _SUFFIXES[joined]
                continue
            tokens.update(parts)
            if first is None:
                first = joined
                first_entry = position
            else:
                middle.add(joined)
                if position == first_entry:
                    compound.add(joined)
    return first, frozenset(tokens), frozenset(middle), frozenset(compound), suffix


def _family_names(
    family: str | None, previous: Sequence[str]
) -> tuple[str | None, frozenset[str], str | None]:
    """(joined current surname, tokens of current and previous surnames, trailing suffix)."""
    words, suffix = (
        _split_trailing_suffix(_words(family)) if isinstance(family, str) else ([], None)
    )
    tokens = {word for word in words if word not in _PARTICLES}
    for name in previous:
        if isinstance(name, str):
            old_words, _ = _split_trailing_suffix(_words(name))
            tokens.update(word for word in old_words if word not in _PARTICLES)
    return ("".join(words) or None), frozenset(tokens), suffix


def standard_birth_date(value: str | None) -> str | None:
    """``"1980-02-03"`` (or ``"19800203"``, ``"02/03/1980"``) -> ``"19800203"``; else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()[:10]
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        year, month, day = text[:4], text[5:7], text[8:10]
    elif len(text) == 10 and text[2] == "/" and text[5] == "/":
        month, day, year = text[:2], text[3:5], text[6:10]
    elif len(text) == 8:
        year, month, day = text[:4], text[4:6], text[6:8]
    else:
        return None  # partial dates ("1980", "1980-02") say too little to compare
    digits = year + month + day
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return None
    return digits


_SEXES = {"male": "M", "m": "M", "female": "F", "f": "F", "other": "O", "o": "O"}


def standard_sex(value: str | None) -> str | None:
    """FHIR gender or US Core birth sex -> ``"M"``/``"F"``/``"O"``; unknown -> None."""
    return _SEXES.get(value.strip().lower()) if isinstance(value, str) else None


def _digits(value: str) -> str:
    return _NOT_DIGIT.sub("", value)


def standard_postal_code(value: str | None) -> str | None:
    """The 5-digit ZIP: ZIP+4 stripped; 3-4 digits are ZIPs whose leading zeros got lost."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    head = text.split("-", 1)[0] if "-" in text else text
    digits = _digits(head)
    if len(digits) == 9:
        digits = digits[:5]
    if 3 <= len(digits) <= 5:
        digits = digits.zfill(5)
    return digits if len(digits) == 5 and digits != "00000" else None


def standard_phone(value: str | None) -> str | None:
    """The last 10 digits of a phone number (country code, extension, punctuation dropped)."""
    if not isinstance(value, str):
        return None
    digits = _digits(value.lower().split("x", 1)[0])  # "x12" and "ext. 12" end the number
    if len(digits) < 10:
        return None
    digits = digits[-10:]
    return None if len(set(digits)) == 1 else digits


def standard_identifier(value: str | None) -> str | None:
    """A member or subscriber id: upper-case letters and digits, separators dropped."""
    if not isinstance(value, str):
        return None
    return _NOT_ALPHANUMERIC.sub("", fold(value)).upper() or None


def standard_ssn(value: str | None) -> str | None:
    """Nine SSN digits, or None when the number is not one the SSA issues.

    Rejected: area 000, 666 or 900-999, group 00, serial 0000, one digit
    repeated, and the famous placeholders (123-45-6789, the Woolworth card...),
    because shared placeholders would link strangers.
    """
    if not isinstance(value, str):
        return None
    digits = _digits(value)
    if len(digits) != 9 or digits in _INVALID_SSNS or len(set(digits)) == 1:
        return None
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return digits


@dataclass(frozen=True, kw_only=True, repr=False)
class Demographics:
    """One person's demographics and card values as given, before standardisation; its
    ``repr`` names the fields present, never their values (``redacted_repr``).

    ``ssn_carried`` says that this person's SSN is their subscriber's, as
    dependents' records often hold; it is kept only with a valid SSN.
    """

    given: Sequence[str] = ()
    family: str | None = None
    previous_families: Sequence[str] = ()
    suffixes: Sequence[str] = ()
    birth_date: str | None = None
    sex: str | None = None
    address_lines: Sequence[str] = ()
    postal_code: str | None = None
    phone: str | None = None
    member_id: str | None = None
    subscriber_id: str | None = None
    ssn: str | None = None
    ssn_carried: bool = False

    def __repr__(self) -> str:
        return redacted_repr(self)


def standard_record(person: Demographics) -> StandardRecord:
    """Standardise one person's raw values (see the module docstring for each field)."""
    first, given_tokens, middle_names, compound, given_suffix = _given_names(person.given)
    family_name, family_tokens, family_suffix = _family_names(
        person.family, person.previous_families
    )
    explicit = next((s for s in map(standard_suffix, person.suffixes) if s is not None), None)
    street = standard_street_address(person.address_lines)
    standard = standard_ssn(person.ssn)
    return StandardRecord(
        first_name=first,
        first_name_roots=name_roots(first) if first else (),
        given_name_tokens=given_tokens,
        middle_names=middle_names,
        compound_first_name=compound,
        family_name=family_name,
        family_name_tokens=family_tokens,
        suffix=explicit or family_suffix or given_suffix,
        birth_date=standard_birth_date(person.birth_date),
        sex=standard_sex(person.sex),
        house_number=street.house_number,
        street=street.street,
        unit=street.unit,
        postal_code=standard_postal_code(person.postal_code),
        phone=standard_phone(person.phone),
        member_id=standard_identifier(person.member_id),
        subscriber_id=standard_identifier(person.subscriber_id),
        ssn=standard,
        ssn_carried=person.ssn_carried and standard is not None,
    )
