"""Matching a file of ``$member-match`` requests in bulk: one answer per request line, in
input order, and every decision stored with its evidence, its review case and its audit
event.

Lines are decided in chunks, on worker processes forked from this one when more than
one is asked for (deciding is CPU-bound and the engine is pure Python); the calling
process stores each chunk's decisions in one transaction before handing its answers on,
so an answer is never given for a decision that was not kept.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from payerbridge.errors import InvalidInput
from payerbridge.fhir.member_match import parse_member_match_request
from payerbridge.identity.matching.decision import MatchPolicy
from payerbridge.identity.matching.scoring import MatchModel
from payerbridge.identity.ports import DecisionToRecord, IdentityIndex
from payerbridge.identity.service import BatchTerms, decide_for_batch, record_batch_decisions
from payerbridge.identity.unit import IdentityUnit
from payerbridge.types import ClientId

__all__ = ["BatchAnswer", "BatchMatcher", "CHUNK_LINES", "OUTCOMES", "Workers", "match_lines"]

# The outcomes an answer line can give (``invalid``: the line was not a request).
OUTCOMES = ("match", "review", "nomatch", "multiple", "invalid")
# Request lines per chunk: a worker's unit of work, and one transaction of decisions.
CHUNK_LINES = 500

BatchAnswer = dict[str, Any]  # request, outcome, member, score, decision


@dataclass(frozen=True)
class BatchMatcher:
    """What deciding request lines needs; worker processes inherit it when they fork."""

    index: IdentityIndex
    model: MatchModel
    policy: MatchPolicy
    client_id: ClientId  # whom the decisions are recorded for (and audited as)
    clock: Callable[[], datetime]
    new_id: Callable[[], str]


@dataclass(frozen=True)
class Workers:
    """The processes request lines are decided on: how many (in this one when 1), and
    what lets go of whatever must not cross a fork (pooled database connections: each
    worker opens its own)."""

    count: int
    before_fork: Callable[[], None]


def decide_line(matcher: BatchMatcher, line: bytes) -> tuple[BatchAnswer, DecisionToRecord | None]:
    """One request line's answer and, when it was decided, the decision to store. A line
    that is not JSON, has no ``id`` or is not a valid request is answered ``invalid``."""
    answer: BatchAnswer = {
        "request": None,
        "outcome": "invalid",
        "member": None,
        "score": None,
        "decision": None,
    }
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        return answer, None
    request_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(request_id, str) or not request_id:
        return answer, None
    answer["request"] = request_id
    try:
        request = parse_member_match_request(body)
    except InvalidInput:
        return answer, None
    terms = BatchTerms(
        matcher.client_id, matcher.model, matcher.policy, matcher.clock(), matcher.new_id
    )
    to_record = decide_for_batch(matcher.index, request, request_id=request_id, terms=terms)
    decision = to_record.decision
    answer.update(
        outcome=decision.outcome.value,
        member=decision.member_id,
        score=decision.match_probability,
        decision=decision.decision_id,
    )
    return answer, to_record


Decided = tuple[int, list[tuple[BatchAnswer, DecisionToRecord | None]]]

# The matcher of this worker process, set by the pool's initializer (after the fork).
_worker_matcher: list[BatchMatcher] = []


def _install(matcher: BatchMatcher) -> None:
    _worker_matcher[:] = [matcher]


def _decide_chunk(lines: list[bytes]) -> Decided:
    """The answers of a chunk of lines (blank lines have none), with its size in bytes."""
    matcher = _worker_matcher[0]
    return sum(map(len, lines)), [decide_line(matcher, line) for line in lines if line.strip()]


def _chunks(source: Iterable[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in source:
        chunk.append(line)
        if len(chunk) == CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _decided(
    matcher: BatchMatcher, source: Iterable[bytes], workers: Workers
) -> Iterator[Iterator[Decided]]:
    """Chunks of lines decided in order, on ``workers`` forked processes (here when 1)."""
    if workers.count <= 1:
        _install(matcher)
        try:
            yield map(_decide_chunk, _chunks(source))
        finally:
            _worker_matcher.clear()
        return
    workers.before_fork()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers.count, initializer=_install, initargs=(matcher,)) as pool:
        yield pool.imap(_decide_chunk, _chunks(source))


def match_lines(
    matcher: BatchMatcher, uow: IdentityUnit, source: Iterable[bytes], workers: Workers
) -> Iterator[tuple[int, list[BatchAnswer]]]:
    """Decide every request line of ``source`` on ``workers`` and yield, chunk by chunk
    and in input order, the bytes read and the answers, each chunk's decisions stored
    first."""
    with _decided(matcher, source, workers) as decided:
        for size, answers in decided:
            record_batch_decisions([decision for _, decision in answers if decision], uow)
            yield size, [answer for answer, _ in answers]
