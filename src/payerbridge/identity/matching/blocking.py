"""Blocking rules: the keys under which a member is indexed and a request looks for candidates.

A request is compared only with members that share at least one blocking key
with it. The keys are stored as index rows (member id, key), so candidate
retrieval is one indexed lookup per key instead of a scan of the population.

The rules are chosen so that a true match with one typo in any *single* field
still shares a key with the member, while each key holds a handful of members
in a population of a million:

=================  ==========================================  ======================
rule               key material                                survives a typo in
=================  ==========================================  ======================
member_id          member id                                   anything but the id
subscriber_id      subscriber id                               anything but the id
ssn                SSN                                         anything but the SSN
phone              phone                                       anything but the phone
birth_surname      birth date (day/month unordered) + Soundex  given name, ids, a
                   of a surname token or of the first name     day/month swap, names
                                                               entered swapped
birth_given        birth date (day/month unordered) + given    surname (married,
                   name root                                   misspelt)
name_birth_year    surname Soundex + given root + birth year   month or day typo
name_birth_day     surname Soundex + given root + month, day   year typo
zip_given_year     ZIP + given root + birth year               surname, or month/day
residence          ZIP + house number + unit                   names, birth date, ids
=================  ==========================================  ======================

Day and month are put in ascending order in the birth-date keys, so a
day/month swap lands on the same key. Every surname token (hyphenated and
previous surnames included) and every nickname root gives its own key.

Keys are ``<rule prefix>:<keyed BLAKE2b hash of the material>``: the index
table holds no SSN, birth date or name, and every key has the same width.
The ``secret`` should come from configuration; changing it means re-indexing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from payerbridge.identity.matching.similarity import soundex
from payerbridge.identity.model import StandardRecord

__all__ = ["BLOCKING_RULES", "BlockingRule", "KeyParts", "blocking_keys"]

_DIGEST_BYTES = 8  # 64 bits: no collisions to speak of among tens of millions of keys


@dataclass(frozen=True, slots=True)
class KeyParts:
    """The pieces blocking keys are made of, computed once per record."""

    record: StandardRecord
    birth_unordered: str | None  # YYYY + min(MM, DD) + max(MM, DD)
    birth_year: str | None
    birth_month_day: str | None
    surname_codes: tuple[str, ...]  # Soundex of each surname token, previous surnames too
    given_roots: tuple[str, ...]
    first_name_code: str | None  # Soundex of the first name: a surname, when entered swapped

    @classmethod
    def of(cls, record: StandardRecord) -> KeyParts:
        dob = record.birth_date
        unordered = None
        if dob is not None:
            month, day = dob[4:6], dob[6:8]
            unordered = dob[:4] + min(month, day) + max(month, day)
        tokens = record.family_name_tokens or ((record.family_name,) if record.family_name else ())
        codes = sorted({code for code in map(soundex, tokens) if code})
        return cls(
            record,
            unordered,
            dob[:4] if dob else None,
            dob[4:] if dob else None,
            tuple(codes),
            record.first_name_roots,
            soundex(record.first_name) if record.first_name else None,
        )


@dataclass(frozen=True, slots=True)
class BlockingRule:
    """A named blocking rule: the key material a record yields (none when a field is missing)."""

    name: str
    prefix: str
    key_material: Callable[[KeyParts], Iterable[str]]


def _one(value: str | None) -> tuple[str, ...]:
    return (value,) if value else ()


def _birth_surname(parts: KeyParts) -> Iterable[str]:
    birth = parts.birth_unordered
    if not birth:
        return ()
    codes = {*parts.surname_codes, parts.first_name_code} - {None}
    return [f"{birth}|{code}" for code in codes]


def _birth_given(parts: KeyParts) -> Iterable[str]:
    birth = parts.birth_unordered
    return [f"{birth}|{root}" for root in parts.given_roots] if birth else ()


def _name_with(parts: KeyParts, suffix: str | None) -> Iterable[str]:
    if suffix is None:
        return ()
    return [f"{code}|{root}|{suffix}" for code in parts.surname_codes for root in parts.given_roots]


def _zip_given_year(parts: KeyParts) -> Iterable[str]:
    postal_code, year = parts.record.postal_code, parts.birth_year
    if postal_code is None or year is None:
        return ()
    return [f"{postal_code}|{root}|{year}" for root in parts.given_roots]


def _residence(parts: KeyParts) -> Iterable[str]:
    record = parts.record
    if record.postal_code is None or record.house_number is None:
        return ()
    return (f"{record.postal_code}|{record.house_number}|{record.unit or ''}",)


BLOCKING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("member_id", "mid", lambda p: _one(p.record.member_id)),
    BlockingRule("subscriber_id", "sub", lambda p: _one(p.record.subscriber_id)),
    BlockingRule("ssn", "ssn", lambda p: _one(p.record.ssn)),
    BlockingRule("phone", "ph", lambda p: _one(p.record.phone)),
    BlockingRule("birth_surname", "bs", _birth_surname),
    BlockingRule("birth_given", "bg", _birth_given),
    BlockingRule("name_birth_year", "ny", lambda p: _name_with(p, p.birth_year)),
    BlockingRule("name_birth_day", "nd", lambda p: _name_with(p, p.birth_month_day)),
    BlockingRule("zip_given_year", "zy", _zip_given_year),
    BlockingRule("residence", "res", _residence),
)


def blocking_keys(
    record: StandardRecord,
    *,
    secret: bytes,
    rules: tuple[BlockingRule, ...] = BLOCKING_RULES,
) -> frozenset[str]:
    """The blocking keys of a record: index them for members, look them up for requests."""
    key = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
    # Copying a keyed hash is about twice as fast as keying a new one per key.
    keyed = hashlib.blake2b(digest_size=_DIGEST_BYTES, key=key)
    parts = KeyParts.of(record)
    keys = set()
    for rule in rules:
        for material in rule.key_material(parts):
            digest = keyed.copy()
            digest.update(material.encode())
            keys.add(f"{rule.prefix}:{digest.hexdigest()}")
    return frozenset(keys)
