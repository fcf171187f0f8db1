"""The reference engine of ``bench identity``: Splink 5 on DuckDB, configured as its
documentation recommends for people.

* comparisons: first name and surname with Jaro-Winkler levels and term-frequency
  adjustments, date of birth with string and date-difference levels, sex, street
  address (Jaro-Winkler), ZIP with term-frequency adjustments, phone, and the card
  identifiers and SSN with Damerau-Levenshtein levels. Comparisons of a column that is
  empty on either side are left out (FEBRL has no sex, phone or subscriber id);
* several blocking rules (names, names with birth date, birth date with ZIP, each
  identifier);
* training as the tutorials do it: lambda from deterministic rules with an assumed
  recall, u by random sampling, m by EM in two sessions blocked on different columns;
* answers two ways from the same predictions: each request's best link, and a 1:1
  resolution, ``cluster_using_single_best_links`` with both inputs declared free of
  duplicates (a member answers at most one request, a request gets at most one member),
  as a payer-to-payer linkage with one request per member is. The clustering is
  iterative in DuckDB and slow (a minute at 10,000 requests here), so it runs up to
  ``one_to_one_limit`` requests.

Both inputs are lists of the raw keyword arguments the engine's ``standard_record``
takes, so Splink sees exactly what our engine sees; the cleaning is Splink's usual
(accents folded, lower case, digits only, the first given name).
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SplinkAnswers", "SplinkLinks", "link_with_splink"]

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
    """Per request: a member (index, -1: none above 0.5) and the link's match probability,
    and the seconds the answers took (training and prediction, plus the clustering for the
    1:1 answers)."""

    member: list[int]
    probability: list[float]
    seconds: float


@dataclass(frozen=True)
class SplinkLinks:
    """Best-link answers, and the 1:1 answers when they were computed."""

    best: SplinkAnswers
    one_to_one: SplinkAnswers | None
    pairs_scored: int


def _folded(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _name(value: object) -> str | None:
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str):
        return None
    words = _folded(value).replace("-", " ").split()
    return words[0] if words else None


def _surname(value: object) -> str | None:
    return _folded(value).strip() or None if isinstance(value, str) else None


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
        "postcode": lambda: cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        "phone": lambda: cl.ExactMatch("phone"),
        "member_id": lambda: cl.DamerauLevenshteinAtThresholds("member_id", [1, 2]),
        "subscriber_id": lambda: cl.ExactMatch("subscriber_id"),
        "ssn": lambda: cl.DamerauLevenshteinAtThresholds("ssn", [1, 2]),
    }
    return [make() for name, make in candidates.items() if name in present]


def link_with_splink(
    members: Sequence[dict[str, Any]],
    requests: Sequence[dict[str, Any]],
    *,
    seed: int = 42,
    u_max_pairs: float = 1e7,
    one_to_one_limit: int = 10_000,
) -> SplinkLinks:
    """Link requests to members with Splink (DuckDB): each request's best link, and the
    1:1 resolution by single best links up to ``one_to_one_limit`` requests."""
    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    members_frame, requests_frame = _frame(members), _frame(requests)
    present = {
        column
        for column in _COLUMNS
        if members_frame[column].notna().any() and requests_frame[column].notna().any()
    }
    rules: list[Any] = [
        block_on("first_name", "surname"),
        block_on("surname", "dob"),
        block_on("first_name", "dob"),
        block_on("dob", "postcode"),
    ]
    rules += [block_on(column) for column in ("member_id", "ssn", "phone") if column in present]
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
    started = time.perf_counter()
    try:
        connection = duckdb.connect()
        connection.execute("SET enable_progress_bar = false")
        db_api = DuckDBAPI(connection)
        inputs = [
            db_api.register(members_frame, dataset_display_name=_MEMBERS),
            db_api.register(requests_frame, dataset_display_name=_REQUESTS),
        ]
        linker = Linker(inputs, settings, log_level=None)
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
        pairs = predictions.as_pandas_dataframe()
        best = _best_links(pairs, len(requests), time.perf_counter() - started)
        one_to_one = None
        if len(requests) <= one_to_one_limit:
            clusters = linker.clustering.cluster_using_single_best_links(
                predictions,
                duplicate_free_datasets=[_MEMBERS, _REQUESTS],
                threshold_match_probability=_KEEP_PROBABILITY,
            )
            one_to_one = _resolved_links(
                pairs,
                clusters.as_pandas_dataframe(),
                len(requests),
                time.perf_counter() - started,
            )
    finally:
        splink_logger.setLevel(level)
    return SplinkLinks(best, one_to_one, len(pairs))


_MEMBERS, _REQUESTS = "members", "requests"


def _pairs(pairs: Any) -> Any:
    """(request, member, probability) of each scored pair, whichever side is which."""
    left_is_member = pairs["source_dataset_l"] == _MEMBERS
    member = pairs["unique_id_l"].where(left_is_member, pairs["unique_id_r"])
    request = pairs["unique_id_r"].where(left_is_member, pairs["unique_id_l"])
    return zip(request.tolist(), member.tolist(), pairs["match_probability"].tolist(), strict=True)


def _best_links(pairs: Any, requests: int, seconds: float) -> SplinkAnswers:
    """Each request's highest-probability member (ties: the lower member index)."""
    member, probability = [-1] * requests, [0.0] * requests
    for j, m, p in _pairs(pairs):
        if p > probability[j] or (p == probability[j] and 0 <= m < member[j]):
            member[j], probability[j] = int(m), float(p)
    return SplinkAnswers(member, probability, seconds)


def _resolved_links(pairs: Any, clusters: Any, requests: int, seconds: float) -> SplinkAnswers:
    """Each request's member in its 1:1 cluster, with that pair's match probability."""
    member_of_cluster: dict[Any, int] = {}
    request_cluster: dict[int, Any] = {}
    for source, unique_id, cluster in zip(
        clusters["source_dataset"].tolist(),
        clusters["unique_id"].tolist(),
        clusters["cluster_id"].tolist(),
        strict=True,
    ):
        if source == _MEMBERS:
            member_of_cluster[cluster] = int(unique_id)
        else:
            request_cluster[int(unique_id)] = cluster
    probability = {(int(j), int(m)): float(p) for j, m, p in _pairs(pairs)}
    member, linked = [-1] * requests, [0.0] * requests
    for j, cluster in request_cluster.items():
        m = member_of_cluster.get(cluster, -1)
        if m >= 0 and (j, m) in probability:
            member[j], linked[j] = m, probability[(j, m)]
    return SplinkAnswers(member, linked, seconds)
