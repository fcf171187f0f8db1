"""String similarity for comparison levels: Jaro-Winkler, one-edit distance and Soundex.

Everything here is pure and works on already standardised strings (see
``standardize``). ``jaro_winkler`` follows the definition rapidfuzz uses
(``rapidfuzz.distance.JaroWinkler.similarity``: integer half-transpositions,
prefix scale 0.1 over at most four characters, boost only above a Jaro of
0.7), so swapping in rapidfuzz is a one-line change inside ``jaro_winkler``.
"""

from __future__ import annotations

from functools import lru_cache
from operator import ne

__all__ = ["is_one_edit_apart", "jaro_winkler", "soundex"]

_PREFIX_SCALE = 0.1
_MAX_PREFIX = 4
_BOOST_THRESHOLD = 0.7


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1]; 1.0 only for equal strings.

    Arguments are put in a canonical order first, so the result is symmetric by
    construction and both orders share one cache entry (names repeat a lot in a
    population, so the cache pays for itself in batch matching).
    """
    if a == b:
        return 1.0
    if a > b:
        a, b = b, a
    return _jaro_winkler(a, b)


@lru_cache(maxsize=1 << 16)
def _jaro_winkler(a: str, b: str) -> float:
    similarity = _jaro(a, b)
    if similarity <= _BOOST_THRESHOLD:
        return similarity
    prefix = 0
    for left, right in zip(a[:_MAX_PREFIX], b[:_MAX_PREFIX], strict=False):
        if left != right:
            break
        prefix += 1
    return similarity + prefix * _PREFIX_SCALE * (1.0 - similarity)


def _jaro(a: str, b: str) -> float:
    len_a, len_b = len(a), len(b)
    if not len_a or not len_b:
        return 0.0
    window = max(0, max(len_a, len_b) // 2 - 1)
    taken = [False] * len_b
    matched_a: list[str] = []
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(i + window + 1, len_b)):
            if not taken[j] and b[j] == char:
                taken[j] = True
                matched_a.append(char)
                break
    matches = len(matched_a)
    if not matches:
        return 0.0
    matched_b = [b[j] for j in range(len_b) if taken[j]]
    half_transpositions = sum(x != y for x, y in zip(matched_a, matched_b, strict=True)) // 2
    return (matches / len_a + matches / len_b + (matches - half_transpositions) / matches) / 3.0


def is_one_edit_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with exactly one typo.

    A typo is one substitution, insertion, deletion or swap of two adjacent
    characters (optimal string alignment distance 1). Equal strings are not one
    edit apart. Linear time; equal lengths (the common case for ids, dates and
    phones) are counted in C with ``map``.
    """
    len_a, len_b = len(a), len(b)
    if len_a == len_b:
        differences = sum(map(ne, a, b))
        if differences == 1:
            return True
        if differences != 2:
            return False
        i = next(k for k in range(len_a) if a[k] != b[k])
        return i + 1 < len_a and a[i] == b[i + 1] and a[i + 1] == b[i]
    if abs(len_a - len_b) != 1:
        return False
    if len_a > len_b:
        a, b, len_a = b, a, len_b
    i = 0
    while i < len_a and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


@lru_cache(maxsize=1 << 16)
def soundex(word: str) -> str | None:
    """American Soundex of a standardised (lower-case a-z) word: ``"robert" -> "R163"``.

    H and W do not separate letters with the same code; vowels do. Characters
    outside a-z are ignored; a word without letters has no code. Cached:
    surnames repeat across a population.
    """
    letters = [char for char in word if "a" <= char <= "z"]
    if not letters:
        return None
    code = [letters[0].upper()]
    previous = _SOUNDEX_CODES.get(letters[0], "")
    for char in letters[1:]:
        digit = _SOUNDEX_CODES.get(char, "")
        if digit and digit != previous:
            code.append(digit)
            if len(code) == 4:
                break
        if char not in "hw":
            previous = digit
    return "".join(code).ljust(4, "0")
