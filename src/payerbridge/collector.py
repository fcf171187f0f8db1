"""The cyclic garbage collector, tuned for a long-running server or worker process.

Bulk jobs and their downloads allocate many short-lived objects (parsed resources, rows,
lines) that form no cycles, while the process holds a large heap that lives as long as it
does (the identity model and its tables, the code sets, the libraries). With CPython's
default thresholds the allocations trigger collections often, and the older generations'
collections walk that whole heap again each time. So once the process is built, what it
holds is moved out of the collector's sight (``gc.freeze``), and the younger generations
are collected less often. Reference counting still frees everything acyclic at once; only
cyclic garbage waits a little longer. ``bench bulk`` measures the effect (ADR 0018)."""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle_for_serving"]

# Allocations before a young collection, then young collections before each older one.
THRESHOLDS = (10_000, 50, 100)


def settle_for_serving() -> None:
    """Collect once, freeze what the process holds after start-up, and raise the
    collection thresholds; call when the process is built, before it serves."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
