"""The member-data sealing benchmark (ADR 0044) measures what it says: a generated
population's bodies sealed as stored, each opened back, and the compartment read from the
sealed database and from a plaintext copy."""

from __future__ import annotations

from payerbridge_tools.bench.sealing_everywhere import measure_member_data_sealing


def test_the_member_data_is_measured_per_resource_sealed_and_against_a_plaintext_copy() -> None:
    cost = measure_member_data_sealing(members=4, rounds=1)

    assert cost.members >= 4 and cost.resources > cost.members
    assert 100 < cost.mean_bytes < cost.sealed_bytes  # nonce, tag and base64 on top
    assert cost.seal_us > 0 and cost.open_us > 0
    assert cost.read_us > 0 and cost.read_plain_us > 0
    assert cost.export_added_us == cost.seal_us + 2 * cost.open_us
