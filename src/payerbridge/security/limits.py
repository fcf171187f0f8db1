"""Rate limits per client and operation (pure: the time is given): a token bucket per
key, refilled at ``per_second`` up to ``burst``. An empty bucket answers how long until
the next request would pass, which becomes the 429's ``Retry-After``.

Each process keeps its own buckets: behind N API processes a client may get up to N
times the rate. The limit is a guard against a runaway or hostile client, not a quota.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from payerbridge.errors import RateLimited

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    at: float  # monotonic seconds of the last refill


class RateLimiter:
    def __init__(self, *, per_second: float, burst: int, max_keys: int = 100_000) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def take(self, client_id: str, operation: str, *, now: float) -> None:
        """Spend one token of the client's bucket for ``operation``; RateLimited when the
        bucket is empty (nothing is spent then)."""
        if self.per_second <= 0:
            return
        key = (client_id, operation)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                self._buckets[key] = bucket
                if len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.at)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
                bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            wait = math.ceil((1 - bucket.tokens) / self.per_second)
        raise RateLimited(
            f"this client calls {operation} more often than {self.per_second:g} times a "
            f"second allows; retry in {wait} seconds",
            retry_after_seconds=max(1, wait),
        )
