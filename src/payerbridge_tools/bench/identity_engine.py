"""Our engine's batch run for ``bench identity``: prepare once, decide under each policy.

Standardisation, blocking keys and decisions run over chunks of records on this process
and processes forked from it (one per core); candidates come from a numpy sort-merge of
blocking keys; the model is trained without labels (u from random pairs, m and lambda by
EM). ``identity.run_identity_bench`` calls ``_run_ours``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import multiprocessing
import operator
import os
import queue
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.blocking import BLOCKING_RULES, blocking_keys
from payerbridge.identity.matching.decision import Matcher, MatchPolicy, decide
from payerbridge.identity.matching.frequencies import count_term_frequencies
from payerbridge.identity.matching.model import (
    DecisionId,
    DecisionReason,
    MatchDecision,
    MatchOutcome,
)
from payerbridge.identity.matching.population import household_pair_probability
from payerbridge.identity.matching.scoring import MatchModel, comparison_vector, default_model
from payerbridge.identity.matching.training import (
    count_exact_agreement,
    estimate_parameters_em,
    estimate_u_probabilities,
)
from payerbridge.identity.model import StandardRecord
from payerbridge.processes import fork_workers
from payerbridge.types import MemberId
from payerbridge_tools.bench.identity_types import (
    Calibration,
    EngineResult,
    LinkageSet,
    _PeakRss,
    _score,
    recall_at_zero_false,
)

_BENCH_SECRET = b"payerbridge-bench-identity-blocking"
_DECIDED_AT = datetime(2027, 1, 1, tzinfo=UTC)
_U_SAMPLE_PAIRS = 50_000
_EM_SAMPLE_REQUESTS = 50_000


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
            return sum(
                int(line.split()[1]) * 1024
                for line in rollup
                if line.startswith(("Private_Clean:", "Private_Dirty:"))
            )
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
        children = [
            context.Process(target=_work, args=(task, chunks, taken, done), daemon=True)
            for _ in range(self._workers - 1)
        ]
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
        record = standard_record(Demographics(**fields[i]))
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


def _decide_chunk(
    policy: MatchPolicy, start: int, stop: int
) -> tuple[list[int], list[int], list[float], Counter[str], Calibration]:
    """Requests ``start:stop``: answers (member index, -1 for none); ranked answers, which
    add the candidate a review named only for its weight (``below_auto_band``: no guard
    held it back), with their rank scores (0 for none), for recall at zero false; the
    outcomes counted by why (a review by the guards or band that held it back); and the
    calibration of the best candidates no guard held back."""
    members, member_ids = _shared["members"], _shared["member_ids"]
    requests, candidates, model = _shared["requests"], _shared["candidates"], _shared["model"]
    truth = _shared["truth"]
    answers, ranked, weights, outcomes = [], [], [], Counter[str]()
    calibration = Calibration()
    for j in range(start, stop):
        decision = decide(
            requests[j],
            [(member_ids[m], members[m]) for m in candidates[j]],
            Matcher(model, policy),
            _DECIDED_AT,
            DecisionId(f"bench-{j}"),
        )
        answer = int(decision.member_id[1:]) if decision.member_id else -1
        answers.append(answer)
        if answer < 0 and decision.evidence.reason is DecisionReason.BELOW_AUTO_BAND:
            answer = int(decision.candidate_ids[0][1:])
        ranked.append(answer)
        weights.append(_rank_score(decision) if answer >= 0 else 0.0)
        outcomes[_outcome_key(decision)] += 1
        eligible = next((c for c in decision.evidence.candidates if not c.guard_violations), None)
        if eligible is not None:
            calibration.add(eligible.match_weight, right=int(eligible.member_id[1:]) == truth[j])
    return answers, ranked, weights, outcomes, calibration


def _rank_score(decision: MatchDecision) -> float:
    """Where the answer ranks for recall at zero false: a rule's match above every weight
    (a fired rule accepts whatever the weight, so no threshold on the weight drops it),
    any other answer at its match weight."""
    if decision.evidence.rule is not None:
        return math.inf
    return decision.match_weight or 0.0


def _outcome_key(decision: MatchDecision) -> str:
    """``review: <why>`` (the evidence's review reason) or the outcome."""
    if decision.outcome is MatchOutcome.REVIEW:
        return f"review: {decision.evidence.review_reason}"
    return decision.outcome.value


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
        shared = {
            "members": members,
            "requests": requests,
            "candidates": candidates,
            "model": model,
            "member_ids": member_ids,
            "truth": data.truth,
        }
        results = []
        with _Pool(shared, workers) as pool:
            for policy in policies:
                started = time.perf_counter()
                decided = _Decided()
                for chunk in pool.map(_decide_chunk, _chunks(len(requests), policy)):
                    decided.add(*chunk)
                seconds = prepared + time.perf_counter() - started
                results.append((policy, decided, seconds))
        rss.add_workers(pool.private_bytes)
    return [
        _ours_scored(data, policy, decided, seconds, rss.growth_mb)
        for policy, decided, seconds in results
    ]


@dataclass
class _Decided:
    """One policy's answers over all requests, gathered from ``_decide_chunk`` s."""

    answers: list[int] = dataclasses.field(default_factory=list)
    ranked: list[int] = dataclasses.field(default_factory=list)
    weights: list[float] = dataclasses.field(default_factory=list)
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    calibration: Calibration = dataclasses.field(default_factory=Calibration)

    def add(
        self,
        answers: list[int],
        ranked: list[int],
        weights: list[float],
        outcomes: Counter[str],
        calibration: Calibration,
    ) -> None:
        self.answers.extend(answers)
        self.ranked.extend(ranked)
        self.weights.extend(weights)
        self.outcomes.update(outcomes)
        self.calibration.merge(calibration)


def _ours_scored(
    data: LinkageSet, policy: MatchPolicy, decided: _Decided, seconds: float, rss_mb: float
) -> EngineResult:
    reviews = {k: n for k, n in decided.outcomes.items() if k.startswith("review")}
    result = _score(
        data,
        f"payerbridge ({policy.name})",
        decided.answers,
        seconds,
        rss_mb,
        reviews=sum(reviews.values()),
        multiples=decided.outcomes[MatchOutcome.MULTIPLE.value],
    )
    recall, weight = recall_at_zero_false(data, decided.ranked, decided.weights)
    return dataclasses.replace(
        result,
        recall_at_zero_false=recall,
        zero_false_threshold=weight,
        review_reasons=tuple(sorted(reviews.items(), key=lambda kv: (-kv[1], kv[0]))),
        calibration=decided.calibration.bands(),
    )


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
    household = household_pair_probability(members)
    initial = default_model(probability_two_random_records_match=1 / len(members)).with_population(
        {}, household
    )
    # rng.choice(range(n)) draws exactly as rng.choice of a sequence of n records.
    random_pairs = [
        (rng.choice(range(len(requests))), rng.choice(range(len(members))))
        for _ in range(_U_SAMPLE_PAIRS)
    ]
    sample: Sequence[int] = range(len(requests))
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
        vectors[len(random_pairs) :],
        initial,
        total_pair_count=len(sample) * len(members),
        u_probabilities=count_exact_agreement(
            estimate_u_probabilities(vectors[: len(random_pairs)]), members, initial.spec
        ),
    )
    return result.model.with_population(count_term_frequencies(members, initial.spec), household)


def _vectors_chunk(start: int, stop: int) -> list[tuple[int, ...]]:
    """Comparison vectors of ``_shared["pairs"][start:stop]`` (request, member) pairs."""
    members, requests, spec = _shared["members"], _shared["requests"], _shared["spec"]
    return [
        comparison_vector(spec, requests[j], members[m]) for j, m in _shared["pairs"][start:stop]
    ]
