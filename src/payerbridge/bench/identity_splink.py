"""The reference engine of ``bench identity``: Splink 4 on DuckDB with a standard model.

The model is the one the Splink tutorials build for people: names with
Jaro-Winkler levels and term-frequency adjustments, date of birth with
string and date-difference levels, sex, street address, ZIP, phone and the
card identifiers. Comparisons of a column that is empty on either side are
left out (FEBRL has no sex, phone or subscriber id). Training is Splink's
usual sequence: lambda from deterministic rules with an assumed recall, u by
random sampling, m by EM in two sessions with different blocking rules.

Both inputs are lists of the raw keyword arguments the engine's
``standard_record`` takes, so Splink sees exactly what our engine sees; the
only cleaning is Splink's usual (lower case, digits only, the first given name).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SplinkAnswers", "link_with_splink"]

_NOT_DIGIT = re.compile(r"[^0-9]")
_NOT_ALPHANUMERIC = re.compile(r"[^A-Z0-9]")
_COLUMNS = (
    "first_name",
    "surname",
    "dob",
    "sex",
    "address",
    "postcode",
    "phone",
    "member_id",
    "subscriber_id",
    "ssn",
)
# Lowest match probability kept from predict(): low enough to sweep thresholds.
_KEEP_PROBABILITY = 0.5


@dataclass(frozen=True)
class SplinkAnswers:
    """Per request: the best-scoring member (index, -1: none above 0.5) and its probability."""

    best_member: list[int]
    best_probability: list[float]
    pairs_scored: int


def _name(value: object) -> str | None:
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str):
        return None
    words = value.lower().replace("-", " ").split()
    return words[0] if words else None


def _surname(value: object) -> str | None:
    return value.lower().strip() or None if isinstance(value, str) else None


def _digits(value: object) -> str | None:
    return _NOT_DIGIT.sub("", value) or None if isinstance(value, str) else None


def _identifier(value: object) -> str | None:
    return _NOT_ALPHANUMERIC.sub("", value.upper()) or None if isinstance(value, str) else None


def _dob(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    digits = _NOT_DIGIT.sub("", value)
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) == 8 else None


def splink_row(unique_id: int, fields: dict[str, Any]) -> tuple[object, ...]:
    """One input row for Splink from ``standard_record`` keyword arguments."""
    lines = fields.get("address_lines") or []
    postcode = _digits(fields.get("postal_code"))
    return (
        unique_id,
        _name(fields.get("given")),
        _surname(fields.get("family")),
        _dob(fields.get("birth_date")),
        fields.get("sex"),
        lines[0].lower() if lines else None,
        postcode.zfill(5)[:5] if postcode else None,
        _digits(fields.get("phone")),
        _identifier(fields.get("member_id")),
        _identifier(fields.get("subscriber_id")),
        _digits(fields.get("ssn")),
    )


def _frame(rows: Sequence[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame.from_records(
        [splink_row(i, fields) for i, fields in enumerate(rows)],
        columns=["unique_id", *_COLUMNS],
    )


def _comparisons(present: set[str]) -> list[Any]:
    import splink.comparison_library as cl

    candidates = {
        "first_name": lambda: cl.NameComparison("first_name").configure(
            term_frequency_adjustments=True
        ),
        "surname": lambda: cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        "dob": lambda: cl.DateOfBirthComparison(
            "dob", input_is_string=True, datetime_format="%Y-%m-%d"
        ),
        "sex": lambda: cl.ExactMatch("sex"),
        "address": lambda: cl.JaroWinklerAtThresholds("address", [0.95, 0.88]),
        "postcode": lambda: cl.ExactMatch("postcode"),
        "phone": lambda: cl.ExactMatch("phone"),
        "member_id": lambda: cl.LevenshteinAtThresholds("member_id", [1]),
        "subscriber_id": lambda: cl.ExactMatch("subscriber_id"),
        "ssn": lambda: cl.LevenshteinAtThresholds("ssn", [1]),
    }
    return [make() for name, make in candidates.items() if name in present]


def link_with_splink(
    members: Sequence[dict[str, Any]],
    requests: Sequence[dict[str, Any]],
    *,
    seed: int = 42,
    u_max_pairs: float = 5e6,
) -> SplinkAnswers:
    """Link requests to members with Splink (DuckDB) and keep each request's best link."""
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    members_frame, requests_frame = _frame(members), _frame(requests)
    present = {
        column
        for column in _COLUMNS
        if members_frame[column].notna().any() and requests_frame[column].notna().any()
    }
    rules = [
        block_on("first_name", "surname"),
        block_on("surname", "dob"),
        block_on("first_name", "dob"),
    ]
    rules += [block_on(column) for column in ("member_id", "ssn") if column in present]
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=_comparisons(present),
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    splink_logger = logging.getLogger("splink")
    level = splink_logger.level
    splink_logger.setLevel(logging.ERROR)
    try:
        linker = Linker(
            [members_frame, requests_frame],
            settings,
            db_api=DuckDBAPI(),
            set_up_basic_logging=False,
            input_table_aliases=["members", "requests"],
        )
        training = linker.training
        training.estimate_probability_two_random_records_match(
            [block_on("first_name", "surname", "dob")], recall=0.7
        )
        training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
        training.estimate_parameters_using_expectation_maximisation(
            block_on("first_name", "surname")
        )
        training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
        predictions = linker.inference.predict(threshold_match_probability=_KEEP_PROBABILITY)
        frame = predictions.as_pandas_dataframe()
    finally:
        splink_logger.setLevel(level)
    return _best_links(frame, len(requests))


def _best_links(frame: Any, requests: int) -> SplinkAnswers:
    best_member = [-1] * requests
    best_probability = [0.0] * requests
    left_is_member = frame["source_dataset_l"] == "members"
    member = frame["unique_id_l"].where(left_is_member, frame["unique_id_r"])
    request = frame["unique_id_r"].where(left_is_member, frame["unique_id_l"])
    probability = frame["match_probability"]
    for j, m, p in zip(request.tolist(), member.tolist(), probability.tolist(), strict=True):
        # Highest probability wins; ties go to the lower member index (deterministic).
        if p > best_probability[j] or (p == best_probability[j] and 0 <= m < best_member[j]):
            best_member[j], best_probability[j] = int(m), float(p)
    return SplinkAnswers(best_member, best_probability, len(frame))
