"""Parsing JSON that may be large (a bulk request, its stored copy) without the cyclic
garbage collector.

Parsing allocates one object per value and makes no reference cycles, but the
allocations trigger collections, and each full collection walks every object the process
holds: in a server with a large heap, parsing a few megabytes took ten times as long with
the collector on (``bench bulk``'s notes). The collector is paused for the parse only."""

from __future__ import annotations

import gc
from typing import Any

import orjson

__all__ = ["loads"]


def loads(raw: bytes | str) -> Any:
    """``orjson.loads`` with the collector paused (left as it was found)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(raw)
    finally:
        if was_enabled:
            gc.enable()
