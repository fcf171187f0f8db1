"""Shared by ``bench identity``'s engines and its report: data-set and result types, measurement.

``LinkageSet`` (engine input with ground truth), ``EngineResult`` (one engine on one
data set), ``Calibration`` (how often the weight's odds came true), ``_PeakRss`` (peak
memory growth while an engine runs) and ``_score`` (answers against the ground truth).
Imported by ``identity`` and ``identity_engine``; imports neither.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE
from payerbridge.identity.matching.scoring import probability_from_weight

__all__ = [
    "Calibration",
    "CalibrationBand",
    "EngineResult",
    "LinkageSet",
    "label_recall",
    "recall_at_zero_false",
]


@dataclass(frozen=True)
class LinkageSet:
    """Members and requests as ``standard_record`` keyword arguments, with ground truth.

    ``truth[j]`` is the index of the member request ``j`` is about (-1: none);
    ``member_household`` and ``request_household`` (-1: none known) let
    false matches within the requester's own household be counted.
    ``request_labels[j]`` names what happened to request ``j``'s person (moved, married,
    no card data...), when the generator says; the report breaks recall down by label.
    """

    name: str
    members: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    truth: Sequence[int]
    member_household: Sequence[int] = ()
    request_household: Sequence[int] = ()
    note: str = ""
    request_labels: Sequence[tuple[str, ...]] = ()

    @property
    def about_members(self) -> int:
        return sum(1 for t in self.truth if t >= 0)


def _odds_bits(probability: float) -> float:
    return math.log2(probability / (1.0 - probability))


# Band edges in bits of match weight (the prior included): the two policies' auto bands
# and round numbers below them.
CALIBRATION_EDGES = (
    0.0,
    5.0,
    10.0,
    _odds_bits(SINGLE_EXCHANGE.auto_match_probability),
    _odds_bits(BULK.auto_match_probability),
)


@dataclass(frozen=True)
class CalibrationBand:
    """Best candidates whose weight fell in [low, high): how many, how many were someone
    else, and how many the weight said would be (the sum of 1 - match probability)."""

    low: float
    high: float
    answers: int
    wrong: int
    expected_wrong: float


@dataclass
class Calibration:
    """Whether the match weight's odds come true: per band of ``CALIBRATION_EDGES``, the
    best candidates no guard held back, counted against the truth. A model whose odds
    are honest shows about as many wrong as expected in every band; far fewer at the top
    would mean evidence left unweighed, more would mean weight it does not have."""

    answers: list[int] = field(default_factory=lambda: [0] * (len(CALIBRATION_EDGES) + 1))
    wrong: list[int] = field(default_factory=lambda: [0] * (len(CALIBRATION_EDGES) + 1))
    expected: list[float] = field(default_factory=lambda: [0.0] * (len(CALIBRATION_EDGES) + 1))

    def add(self, weight: float, *, right: bool) -> None:
        band = sum(1 for edge in CALIBRATION_EDGES if weight >= edge)
        self.answers[band] += 1
        self.wrong[band] += not right
        self.expected[band] += probability_from_weight(-weight)

    def merge(self, other: Calibration) -> None:
        self.answers = [a + b for a, b in zip(self.answers, other.answers, strict=True)]
        self.wrong = [a + b for a, b in zip(self.wrong, other.wrong, strict=True)]
        self.expected = [a + b for a, b in zip(self.expected, other.expected, strict=True)]

    def bands(self) -> tuple[CalibrationBand, ...]:
        edges = (-math.inf, *CALIBRATION_EDGES, math.inf)
        return tuple(
            CalibrationBand(edges[b], edges[b + 1], n, self.wrong[b], self.expected[b])
            for b, n in enumerate(self.answers)
        )


@dataclass(frozen=True)
class EngineResult:
    """One engine on one data set. Rates are fractions; ``None`` where they do not apply."""

    dataset: str
    engine: str
    members: int
    requests: int
    about_members: int
    auto_matches: int
    correct: int
    false_auto_matches: int
    false_in_household: int
    false_on_non_members: int
    reviews: int | None
    multiples: int | None
    seconds: float
    peak_rss_mb: float
    recall_at_zero_false: float | None = None
    # Splink: a match probability; ours: a match weight (the answers' own scale).
    zero_false_threshold: float | None = None
    # Ours: reviews counted by what held them back (the guards, or the band).
    review_reasons: tuple[tuple[str, int], ...] = ()
    # Per request label (generators that label): (label, requests about members, found).
    label_recall: tuple[tuple[str, int, int], ...] = ()
    # Ours: the weight's odds against the truth (see ``Calibration``).
    calibration: tuple[CalibrationBand, ...] = ()

    @property
    def precision(self) -> float:
        return self.correct / self.auto_matches if self.auto_matches else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.about_members if self.about_members else 0.0

    @property
    def review_rate(self) -> float | None:
        return None if self.reviews is None else self.reviews / self.requests

    @property
    def multiple_rate(self) -> float | None:
        return None if self.multiples is None else self.multiples / self.requests


# -- measurement -----------------------------------------------------------------------------


class _PeakRss:
    """Peak growth of the resident set size while the block runs (MB)."""

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start_bytes = 0
        self.peak_bytes = 0
        self.worker_bytes = 0

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * self._page
        except OSError:  # not Linux: the lifetime peak (ru_maxrss is in bytes on macOS)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __enter__(self) -> _PeakRss:
        gc.collect()
        self.start_bytes = self.peak_bytes = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    def add_workers(self, private_bytes: int) -> None:
        """Count the peak private memory of worker processes (pools run one at a time)."""
        self.worker_bytes = max(self.worker_bytes, private_bytes)

    @property
    def growth_mb(self) -> float:
        return (self.peak_bytes - self.start_bytes + self.worker_bytes) / 1024 / 1024


def _score(
    data: LinkageSet,
    engine: str,
    answers: Sequence[int],
    seconds: float,
    peak_rss_mb: float,
    *,
    reviews: int | None = None,
    multiples: int | None = None,
) -> EngineResult:
    auto = correct = in_household = non_members = 0
    for j, answer in enumerate(answers):
        if answer < 0:
            continue
        auto += 1
        if answer == data.truth[j]:
            correct += 1
            continue
        in_household += _same_household(data, answer, j)
        non_members += data.truth[j] < 0
    return EngineResult(
        label_recall=label_recall(data, answers) if data.request_labels else (),
        dataset=data.name,
        engine=engine,
        members=len(data.members),
        requests=len(data.requests),
        about_members=data.about_members,
        auto_matches=auto,
        correct=correct,
        false_auto_matches=auto - correct,
        false_in_household=in_household,
        false_on_non_members=non_members,
        reviews=reviews,
        multiples=multiples,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb,
    )


def recall_at_zero_false(
    data: LinkageSet, answers: Sequence[int], scores: Sequence[float]
) -> tuple[float, float]:
    """Recall at the lowest score threshold at which no answer is wrong: the answers scoring
    above every wrong answer's score (all of them when none is wrong), and that threshold."""
    wrong = [s for m, s, t in zip(answers, scores, data.truth, strict=True) if 0 <= m != t]
    threshold = max(wrong, default=float("-inf"))
    right = sum(
        1
        for m, s, t in zip(answers, scores, data.truth, strict=True)
        if m >= 0 and m == t and s > threshold
    )
    return (right / data.about_members if data.about_members else 0.0), threshold


def label_recall(data: LinkageSet, answers: Sequence[int]) -> tuple[tuple[str, int, int], ...]:
    """Per label of ``data.request_labels``: requests about members with it, and how many of
    them the answers found."""
    about: dict[str, int] = {}
    found: dict[str, int] = {}
    for labels, answer, truth in zip(data.request_labels, answers, data.truth, strict=True):
        if truth < 0:
            continue
        for label in labels:
            about[label] = about.get(label, 0) + 1
            found[label] = found.get(label, 0) + (answer == truth)
    return tuple((label, about[label], found[label]) for label in sorted(about))


def _same_household(data: LinkageSet, member: int, request: int) -> bool:
    if not data.member_household or not data.request_household:
        return False
    household = data.request_household[request]
    return household >= 0 and data.member_household[member] == household
