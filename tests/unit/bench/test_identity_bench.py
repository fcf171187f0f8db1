"""Our engine in ``bench identity``: the same answers on one process or several."""

from __future__ import annotations

import dataclasses

import pytest

from payerbridge.bench import identity as bench
from payerbridge.bench import identity_engine as engine
from payerbridge.bench.identity_data import generate_identity_set
from payerbridge.identity.blocking import blocking_keys
from payerbridge.identity.decision import BULK, SINGLE_EXCHANGE
from payerbridge.identity.standardize import standard_record


@pytest.fixture(scope="module")
def data() -> bench.LinkageSet:
    return bench.synthetic_set(generate_identity_set(1_500, seed=11, requests=1_500))


def test_the_key_join_finds_the_candidates_a_key_index_finds(data: bench.LinkageSet) -> None:
    members, requests, candidates, _ = engine._prepare(data, workers=1)

    index: dict[str, set[int]] = {}
    for i, fields in enumerate(data.members):
        assert members[i] == standard_record(**fields)
        for key in blocking_keys(members[i], secret=engine._BENCH_SECRET):
            index.setdefault(key, set()).add(i)
    for j, fields in enumerate(data.requests):
        assert requests[j] == standard_record(**fields)
        keys = blocking_keys(requests[j], secret=engine._BENCH_SECRET)
        assert candidates[j] == sorted(set().union(*(index.get(k, set()) for k in keys)))
    assert sum(len(candidates[j]) for j in range(len(candidates))) > len(requests)


def test_several_worker_processes_give_the_answers_of_one(data: bench.LinkageSet) -> None:
    def answers(workers: int) -> list[dict[str, object]]:
        results = engine._run_ours(data, (BULK, SINGLE_EXCHANGE), seed=3, workers=workers)
        return [{**dataclasses.asdict(r), "seconds": 0, "peak_rss_mb": 0} for r in results]

    serial = answers(1)

    assert answers(2) == serial
    assert serial[0]["correct"] > 0
