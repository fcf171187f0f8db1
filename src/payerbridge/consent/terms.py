"""Recognising sensitive data in free text (pure): the categories' terms found as whole
words anywhere in a resource's text.

A resource may say what it is only in words: a Condition with ``code.text`` "HIV
disease" and no Coding, a Coding with a ``display`` and no code, an Observation
``note``, a narrative, a ``valueString``, an Organization's name ("... Opioid Treatment
Program"). Every string in the resource is judged, keys and all, from its JSON text,
but the values of ``code``, ``valueCode`` and ``system``, which are judged as codes
(a v3-ActReason ``HIV`` is not the word HIV), and of ``id``, a key that names nothing
(a reference to a record names it to the recipient, so a reference is judged). There
is no walk: the words are split out in C (the bytes translated and split), and the
text is searched for whole terms only when it holds a term's key word, which few
resources do.

The text is normalised before comparison: Unicode NFKC (full-width and other
compatibility forms as ASCII), invisible characters removed, HTML character
references of a narrative decoded, JSON's escaped line breaks as spaces, and case
folded; in a phrase any run of spaces, hyphens or underscores matches any other. A term
matches only as whole words: not preceded or followed by a letter or digit, so "hiv"
is not found in "archive". A case-sensitive term (an acronym such as ``AIDS``) matches
only as written, and not right after the words its entry names (``hearing AIDS``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from payerbridge.consent.categories import SensitiveCategory, Term

__all__ = ["TermIndex", "normalised", "resource_text"]

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
_JSON_BREAKS = re.compile(r"\\[nrt]")
# The codes and systems of a resource's JSON, judged as codes and not as words, and ids.
_CODE_VALUES = re.compile(r'"(?:code|valueCode|system|id)":"(?:[^"\\]|\\.)*"')
_SEPARATOR = r"[\s\-_]+"
_SEPARATORS = re.compile(_SEPARATOR)
# How far back to look for the words a case-sensitive term must not follow.
_LOOK_BEHIND = 40
# Bytes to words for the screen: ASCII letters in lower case stay, everything else
# (digits too: fewer, longer words to look up) is a space.
_WORDS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))


def resource_text(resource: Mapping[str, Any]) -> str:
    """The resource as the text its terms are looked for in (its JSON)."""
    try:
        return orjson.dumps(resource).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(resource)  # something JSON cannot hold: every string is still in it


def _pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One expression for ``phrases`` as whole words, written as a trie (alternatives
    that share a beginning share its test, which keeps a search linear in the text)."""
    trie: dict[str, Any] = {}
    for phrase in set(phrases):
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    if not trie:
        return None
    return re.compile(rf"(?<![^\W_])(?:{_branches(trie)})(?![^\W_])")


def _branches(node: dict[str, Any]) -> str:
    ends = "" in node
    parts = [
        (_SEPARATOR if char == " " else re.escape(char)) + _branches(child)
        for char, child in sorted(node.items())
        if char
    ]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return f"(?:{body})?" if ends else body


def _key_word(phrase: str) -> bytes:
    """The word of ``phrase`` a text must hold for the phrase to be searched for, as the
    screen splits words: its longest (the rarest, as a rule), the last of equals
    (``child abuse``: abuse)."""
    words = phrase.casefold().encode("ascii", "replace").translate(_WORDS).split()
    return max(reversed(words), key=len) if words else b""


class TermIndex:
    """The categories' terms, compiled: one expression for the case-folded terms, one
    for those matched as written."""

    def __init__(self, categories: Iterable[SensitiveCategory]) -> None:
        self._folded: dict[str, set[str]] = {}
        self._exact: dict[str, set[str]] = {}
        self._unless: dict[str, set[str]] = {}
        self._anywhere: set[str] = set()  # case-sensitive terms some entry takes anywhere
        for category in categories:
            for term in category.terms:
                self._add(term, category.name)
        self._folded_pattern = _pattern(self._folded)
        self._exact_pattern = _pattern(self._exact)
        self._key_words = frozenset(_key_word(term) for term in [*self._folded, *self._exact])

    def _add(self, term: Term, name: str) -> None:
        if term.case_sensitive:
            self._exact.setdefault(term.text, set()).add(name)
            if term.unless_after:
                self._unless.setdefault(term.text, set()).update(term.unless_after)
            else:  # an entry without exceptions matches everywhere (entries only add)
                self._anywhere.add(term.text)
        else:
            self._folded.setdefault(term.text, set()).add(name)

    def names_in_json(self, raw: bytes) -> set[str]:
        """``names_in`` for a resource's JSON, screened first: most hold no key word."""
        if not self._key_words:
            return set()
        if raw.isascii() and b"&" not in raw and b"\\" not in raw:
            words = raw.translate(_WORDS).split()
        else:  # what normalisation changes (compatibility forms, references, breaks)
            words = normalised(raw.decode()).casefold().encode().translate(_WORDS).split()
        if self._key_words.isdisjoint(words):
            return set()
        return self.names_in(_CODE_VALUES.sub(":", raw.decode()))

    def names_in(self, text: str) -> set[str]:
        """The categories whose terms ``text`` holds as whole words."""
        names: set[str] = set()
        if self._folded_pattern is None and self._exact_pattern is None:
            return names
        text = normalised(text)
        if self._folded_pattern is not None:
            for found in self._folded_pattern.findall(text.casefold()):
                names |= self._folded[_phrase(found)]
        if self._exact_pattern is not None:
            for match in self._exact_pattern.finditer(text):
                term = _phrase(match.group())
                if not self._follows_exception(text, match.start(), term):
                    names |= self._exact[term]
        return names

    def _follows_exception(self, text: str, start: int, term: str) -> bool:
        exceptions = self._unless.get(term)
        if not exceptions or term in self._anywhere:
            return False
        before = " ".join(text[max(0, start - _LOOK_BEHIND) : start].casefold().split())
        return any(before.endswith(words) for words in exceptions)


def normalised(text: str) -> str:
    """``text`` as terms are compared with it: NFKC without invisible characters, HTML
    character references decoded, JSON's escaped line breaks and tabs as spaces."""
    if not text.isascii():
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if "&" in text:
        text = html.unescape(text)
        if not text.isascii():  # a reference may spell a compatibility character
            text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if "\\" in text:
        text = _JSON_BREAKS.sub(" ", text)
    return text


def _phrase(found: str) -> str:
    return " ".join(_SEPARATORS.split(found))
