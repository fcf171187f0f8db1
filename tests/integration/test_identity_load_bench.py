"""The loading probe of ``bench identity``: one file against a per-type export."""

from __future__ import annotations

import pytest

from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.bench.identity_load import LAYOUTS, load_lines, time_loads

# A whole benchmark run: `pytest -m bench` (make test leaves it out).
pytestmark = pytest.mark.bench


def test_each_layout_is_loaded_into_a_fresh_instance_and_reported() -> None:
    data = generate_identity_set(200, seed=7, requests=20)
    said: list[str] = []

    times = time_loads(data, progress=said.append)

    assert [t.layout for t in times] == list(LAYOUTS)
    assert [len(t.calls) for t in times] == [1, 1, 2]
    assert all(t.members == 200 and t.import_seconds > 0 and t.train_seconds > 0 for t in times)
    assert len(said) == 3
    table = load_lines(times)
    assert sum(line.startswith("| 200 |") for line in table) == 3


def test_an_unknown_layout_is_refused() -> None:
    data = generate_identity_set(20, seed=7, requests=5)
    with pytest.raises(ValueError, match="unknown layout"):
        time_loads(data, layouts=["per member"])
