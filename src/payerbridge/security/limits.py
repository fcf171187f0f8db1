"""Rate limits per subject (a client, or an address before there is a client) and
operation, shared by every process on the database (ADR 0025).

Each (subject, operation) has a token bucket: ``burst`` requests at once, refilled at
``per_second``. The bucket is kept as GCRA keeps it, as one number, its *theoretical
arrival time* (``tat``): the instant it would be full again. Taking ``n`` requests
moves it ``n`` intervals on, if that leaves it no further ahead of now than the whole
burst. The number lives in a shared store (``Allowances``): every process takes from
the same bucket.

A process does not ask the store for every request. It *leases* a block of requests at
once (``block_of``: a quarter of a second of the rate, at most an eighth of the
burst, at least one) and serves them from memory; a refusal is remembered until the
bucket has a request again. With the limits that guard against guessing (a few requests
a second) every request asks the store; at high rates the store is asked a few times a
second. What a process holds and does not use is lost to the others, at most one block
per process, and expires after the time the bucket takes to fill. A store that cannot be
asked refuses the request (its error propagates): the limit fails closed.

The pure part (``Rate`` and ``Lease``, in ``model.py``; ``RatePolicy``, ``lease_tokens``)
takes time as an argument (seconds since the epoch: shared by the processes, unlike a
monotonic clock).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from payerbridge.errors import RateLimited
from payerbridge.security.model import Lease, Rate

__all__ = [
    "Allowances",
    "InMemoryAllowances",
    "RateLimiter",
    "RatePolicy",
    "block_of",
    "lease_tokens",
    "seconds_until_next",
]

# Tolerance of the floating-point arithmetic on arrival times (seconds).
_EPSILON = 1e-9
# Idle buckets (full again) are forgotten by the store this often, per process.
_FORGET_EVERY_SECONDS = 600.0


@dataclass(frozen=True)
class RatePolicy:
    """The rate of each operation (``"POST /fhir/Patient/$member-match"``: the method and
    the route's template): its own where ``operations`` names it (``None``: no limit),
    else ``default`` (``None``: no limit)."""

    default: Rate | None
    operations: Mapping[str, Rate | None] = field(default_factory=dict)

    def rate_of(self, operation: str) -> Rate | None:
        if operation in self.operations:
            return self.operations[operation]
        return self.default


def lease_tokens(tat: float | None, rate: Rate, wanted: int, now: float) -> Lease:
    """Take up to ``wanted`` requests from the bucket whose arrival time is ``tat``
    (``None``: a bucket never used, full): as many as it holds, none when it is empty."""
    base = now if tat is None else max(tat, now)
    available = math.floor(rate.burst - (base - now) / rate.interval + _EPSILON)
    granted = max(0, min(wanted, available))
    if granted == 0:
        return Lease(0, base)
    return Lease(granted, base + granted * rate.interval)


def seconds_until_next(tat: float, rate: Rate, now: float) -> float:
    """How long until the bucket at ``tat`` holds one request again."""
    return max(0.0, tat + rate.interval - rate.burst * rate.interval - now)


def block_of(rate: Rate) -> int:
    """How many requests a process leases at once (see the module docstring)."""
    return max(1, min(rate.burst // 8, math.ceil(rate.per_second / 4)))


class Allowances(Protocol):
    """The shared buckets (``store.rate_limits.SqlAllowances``)."""

    def lease(self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float) -> Lease:
        """``lease_tokens`` on the shared bucket, atomically."""
        ...

    def forget_idle(self, *, now: float) -> int:
        """Drop the buckets that are full again (a full bucket is the same as none)."""
        ...


class InMemoryAllowances:
    """``Allowances`` of one process (tests, and a reference for the SQL one)."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def lease(self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float) -> Lease:
        with self._lock:
            lease = lease_tokens(self.buckets.get((subject, operation)), rate, wanted, now)
            if lease.granted:
                self.buckets[(subject, operation)] = lease.tat
            return lease

    def forget_idle(self, *, now: float) -> int:
        with self._lock:
            idle = [key for key, tat in self.buckets.items() if tat <= now]
            for key in idle:
                del self.buckets[key]
            return len(idle)


@dataclass
class _Held:
    """What this process holds of one shared bucket."""

    tokens: int = 0
    until: float = 0.0  # the held tokens expire then
    refused_until: float = 0.0  # the bucket is empty until then


class RateLimiter:
    """Takes one request of a subject's bucket for an operation, leasing from the shared
    ``allowances`` in blocks; ``RateLimited`` with the true wait when the bucket is empty."""

    def __init__(
        self, policy: RatePolicy, allowances: Allowances, *, max_keys: int = 100_000
    ) -> None:
        self.policy = policy
        self._allowances = allowances
        self._held: OrderedDict[tuple[str, str], _Held] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._forgot_at: float | None = None

    def take(self, subject: str, operation: str, *, now: float) -> None:
        """Spend one request of ``subject``'s bucket for ``operation`` (``now``: seconds
        since the epoch); RateLimited when it is empty (nothing is spent then)."""
        rate = self.policy.rate_of(operation)
        if rate is None:
            return
        key = (subject, operation)
        with self._lock:
            held = self._held_for(key)
            if now < held.refused_until:
                raise _limited(subject, operation, rate, held.refused_until - now)
            if held.tokens > 0 and now < held.until:
                held.tokens -= 1
                return
            forget = self._forgot_at is None or now - self._forgot_at >= _FORGET_EVERY_SECONDS
            if forget:
                self._forgot_at = now
        if forget:
            self._allowances.forget_idle(now=now)
        lease = self._allowances.lease(subject, operation, rate, block_of(rate), now=now)
        with self._lock:
            held = self._held_for(key)
            if lease.granted == 0:
                wait = seconds_until_next(lease.tat, rate, now)
                held.refused_until = now + wait
                raise _limited(subject, operation, rate, wait)
            if now >= held.until:
                held.tokens = 0
            held.tokens += lease.granted - 1
            held.until = now + rate.burst * rate.interval

    def _held_for(self, key: tuple[str, str]) -> _Held:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
            if len(self._held) > self._max_keys:
                self._held.popitem(last=False)
        else:
            self._held.move_to_end(key)
        return held


def _limited(subject: str, operation: str, rate: Rate, wait: float) -> RateLimited:
    seconds = max(1, math.ceil(wait - _EPSILON))
    return RateLimited(
        f"this client calls {operation} more often than {rate.describe()} allows; retry in "
        f"{seconds} seconds",
        retry_after_seconds=seconds,
        subject=subject,
    )
