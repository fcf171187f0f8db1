"""String similarity for comparison levels: Jaro-Winkler, edit distances and Soundex.

Everything here is pure and works on already standardised strings (see
``standardize``). Jaro-Winkler and the edit distances are rapidfuzz's (C++,
about thirty times our former pure-Python Jaro-Winkler on the batch path);
the functions here fix which variant each comparison level means.
"""

from __future__ import annotations

from functools import lru_cache

from rapidfuzz.distance import OSA, JaroWinkler

__all__ = ["edit_distance_at_most", "is_one_edit_apart", "jaro_winkler", "soundex"]


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1] (prefix scale 0.1, boost above a Jaro of 0.7);
    1.0 only for equal strings, symmetric."""
    return JaroWinkler.similarity(a, b)


def is_one_edit_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with exactly one typo.

    A typo is one substitution, insertion, deletion or swap of two adjacent
    characters (optimal string alignment distance 1). Equal strings are not one
    edit apart.
    """
    return OSA.distance(a, b, score_cutoff=1) == 1


def edit_distance_at_most(a: str, b: str, edits: int) -> bool:
    """Whether ``a`` and ``b`` are at most ``edits`` typos apart (as ``is_one_edit_apart``)."""
    return OSA.distance(a, b, score_cutoff=edits) <= edits


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
