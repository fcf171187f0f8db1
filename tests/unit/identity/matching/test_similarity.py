"""Jaro-Winkler, one-edit distance and Soundex."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.identity.matching.similarity import is_one_edit_apart, jaro_winkler, soundex

words = st.text(alphabet="abcdefghij", max_size=12)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Winkler's classic examples, as rapidfuzz computes them.
        ("martha", "marhta", 0.9611),
        ("dwayne", "duane", 0.84),
        ("dixon", "dicksonx", 0.8133),
        ("jellyfish", "smellyfish", 0.8963),
        ("crate", "trace", 0.7333),
        ("abcdef", "abxyzw", 0.5556),  # a Jaro of 0.7 or less gets no prefix boost
        ("abc", "xyz", 0.0),
        ("", "abc", 0.0),
    ],
)
def test_jaro_winkler_known_values(a: str, b: str, expected: float) -> None:
    assert jaro_winkler(a, b) == pytest.approx(expected, abs=1e-4)


@given(words, words)
def test_jaro_winkler_is_symmetric_and_bounded(a: str, b: str) -> None:
    similarity = jaro_winkler(a, b)
    assert similarity == jaro_winkler(b, a)
    assert 0.0 <= similarity <= 1.0
    assert (similarity == 1.0) == (a == b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("abc", "abd"),
        ("abc", "acb"),
        ("abc", "ab"),
        ("ab", "abc"),
        ("a", ""),
        ("ab", "ba"),
        ("19800203", "19800230"),
        ("W123457", "W123458"),
        ("abcd", "abdc"),
    ],
)
def test_one_edit_apart(a: str, b: str) -> None:
    assert is_one_edit_apart(a, b) and is_one_edit_apart(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("abc", "abc"),
        ("", ""),
        ("abc", "bca"),
        ("abcd", "badc"),
        ("ab", "cd"),
        ("abc", "a"),
        ("19800203", "19811203"),
    ],
)
def test_not_one_edit_apart(a: str, b: str) -> None:
    assert not is_one_edit_apart(a, b) and not is_one_edit_apart(b, a)


@given(words.filter(bool), st.data())
def test_any_single_typo_is_one_edit(word: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(word) - 1))
    kind = data.draw(st.sampled_from(["substitute", "delete", "insert", "swap"]))
    if kind == "substitute":
        typo = word[:i] + data.draw(st.sampled_from("klmn")) + word[i + 1 :]
    elif kind == "delete":
        typo = word[:i] + word[i + 1 :]
    elif kind == "insert":
        typo = word[:i] + data.draw(st.sampled_from("klmn")) + word[i:]
    else:
        typo = word[:i] + word[i + 1 : i + 2] + word[i] + word[i + 2 :]
    assert is_one_edit_apart(word, typo) == (typo != word)


@pytest.mark.parametrize(
    ("word", "code"),
    [
        ("robert", "R163"),
        ("rupert", "R163"),
        ("ashcraft", "A261"),
        ("tymczak", "T522"),
        ("pfister", "P236"),
        ("lee", "L000"),
        ("garcia", "G620"),
        ("", None),
        ("123", None),
    ],
)
def test_soundex(word: str, code: str | None) -> None:
    assert soundex(word) == code
