"""The online ``$member-match`` probe of ``bench identity`` against a real server process."""

from __future__ import annotations

import random

import pytest

from payerbridge_tools.bench.identity import MemberMatchLatency
from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.bench.identity_online import HttpMemberMatchLatency

# A whole benchmark run: `pytest -m bench` (make test leaves it out).
pytestmark = pytest.mark.bench


def test_online_probe_times_member_match_over_http() -> None:
    data = generate_identity_set(300, seed=7, requests=120)
    chosen = random.Random(7).sample(range(data.request_count), 50)
    probe: MemberMatchLatency = HttpMemberMatchLatency(
        warmup=20, throughput_requests=200, connections=4
    )

    result = probe(data, chosen)

    assert result.members == 300
    assert result.requests == 50
    assert result.p50_ms > 0
    assert result.p99_ms >= result.p50_ms
    assert result.per_second > 0
    # The bare endpoint (parse only) under the same load is the reference: always faster.
    assert result.bare_per_second is not None and result.bare_per_second > result.per_second
    assert "ERRORS" not in result.note, result.note
    # Most requests are about members and well formed: some must be matched.
    assert "answers 200 x0," not in result.note, result.note
