"""Each tracing test starts from a process that propagates and records nothing, and
leaves it so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payerbridge.logging import use_trace_ids
from payerbridge.tracing import stop_tracing
from payerbridge.tracing.context import configure


@pytest.fixture(autouse=True)
def _untraced_process() -> Iterator[None]:
    configure(None, propagate=True)
    yield
    stop_tracing()
    configure(None, propagate=True)
    use_trace_ids(None)
