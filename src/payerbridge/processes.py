"""How many processes CPU-bound work may use: the batch matcher, the identity index
builder and their benchmarks."""

from __future__ import annotations

import multiprocessing
import os

__all__ = ["fork_workers", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fork_workers() -> int:
    """The CPUs this process may use, when it can fork (1 where it cannot)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return usable_cpus()
