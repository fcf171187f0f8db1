"""Our engine in ``bench identity``: the same answers on one process or several, and whether
the odds of its weights came true."""

from __future__ import annotations

import dataclasses
import math

import pytest

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE
from payerbridge_tools.bench import identity as bench
from payerbridge_tools.bench import identity_engine as engine
from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.bench.identity_types import CALIBRATION_EDGES, Calibration


@pytest.fixture(scope="module")
def data() -> bench.LinkageSet:
    return bench.synthetic_set(generate_identity_set(1_500, seed=11, requests=1_500))


def test_the_key_join_finds_the_candidates_a_key_index_finds(data: bench.LinkageSet) -> None:
    members, requests, candidates, _ = engine._prepare(data, workers=1)

    index: dict[str, set[int]] = {}
    for i, fields in enumerate(data.members):
        assert members[i] == standard_record(Demographics(**fields))
        for key in blocking_keys(members[i], secret=engine._BENCH_SECRET):
            index.setdefault(key, set()).add(i)
    for j, fields in enumerate(data.requests):
        assert requests[j] == standard_record(Demographics(**fields))
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


def test_calibration_counts_wrong_answers_against_the_odds_of_their_weight() -> None:
    calibration = Calibration()
    calibration.add(20.0, right=True)  # odds of a million to one: right, as predicted
    calibration.add(11.0, right=False)  # 2,048 to one, and wrong
    other = Calibration()
    other.add(-1.0, right=False)  # odds of 1 to 2: two in three of these are someone else
    calibration.merge(other)

    bands = {(b.low, b.high): b for b in calibration.bands()}

    assert sum(b.answers for b in bands.values()) == 3
    top = bands[(CALIBRATION_EDGES[-1], math.inf)]
    assert (top.answers, top.wrong) == (1, 0)
    assert top.expected_wrong == pytest.approx(2**-20, rel=1e-3)
    middle = bands[(10.0, CALIBRATION_EDGES[3])]
    assert (middle.answers, middle.wrong) == (1, 1)
    assert middle.expected_wrong == pytest.approx(1 / 2049)
    bottom = bands[(-math.inf, 0.0)]
    assert (bottom.answers, bottom.wrong) == (1, 1)
    assert bottom.expected_wrong == pytest.approx(2 / 3)


def test_the_report_says_whether_the_weights_odds_came_true(data: bench.LinkageSet) -> None:
    results = engine._run_ours(data, (SINGLE_EXCHANGE, BULK), seed=3, workers=1)
    single, bulk = results

    # The best candidates and their weights do not depend on the policy.
    assert single.calibration == bulk.calibration
    counted = sum(b.answers for b in single.calibration)
    assert len(data.requests) >= counted > len(data.requests) // 2
    assert all(0 <= b.wrong <= b.answers for b in single.calibration)
    markdown = bench.report_markdown(
        bench.IdentityBenchReport(results=results),
        seed=3,
        requests_per_member=1.0,
        splink_threshold=0.9,
    )
    section = markdown.split("## Do the weight's odds come true?")[1].split("\n## ")[0]
    (row,) = [line for line in section.splitlines() if line.startswith(f"| {data.name} |")]
    cells = row.strip("| ").split(" | ")[1:]
    assert len(cells) == len(CALIBRATION_EDGES) + 1
    assert sum(int(cell.split(":")[0].replace(",", "")) for cell in cells) == counted
