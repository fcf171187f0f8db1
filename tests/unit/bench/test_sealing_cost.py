"""The sealing benchmark measures what it says: records of the index's size, each sealed
and opened back to itself."""

from __future__ import annotations

from payerbridge_tools.bench.sealing import measure_sealing


def test_the_sealing_cost_is_measured_per_record_on_records_of_the_index_size() -> None:
    cost = measure_sealing(records=40, rounds=1)

    assert cost.records == 40
    assert 150 < cost.mean_bytes < cost.sealed_bytes  # nonce, tag and base64 on top
    assert cost.seal_us > 0 and cost.open_us > 0 and cost.parse_us > 0
