"""Token buckets that keep sends within the providers' published rates (per process).

Written here rather than taken from a rate-limit package (aiolimiter and the like, one limiter
awaited per acquire): a send draws on several buckets at once (bot, chat, group) and the sender
wants one figure, the wait until all of them allow it, to schedule the send without a task
blocked per bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kobliat.sending.clients import Pace


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Pacer:
    """Hands out send slots: `reserve` says how long to wait before a send may go."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def reserve(self, paces: list[Pace]) -> float:
        """Take one token from each bucket (owing it when empty); seconds until all are paid."""
        now = self._clock()
        wait = 0.0
        for pace in paces:
            bucket = self._buckets.setdefault(pace.key, _Bucket(pace.burst, now))
            bucket.tokens = min(pace.burst, bucket.tokens + (now - bucket.updated) * pace.rate)
            bucket.updated = now
            bucket.tokens -= 1.0
            if bucket.tokens < 0:
                wait = max(wait, -bucket.tokens / pace.rate)
        return wait

    def forget_idle(self, idle_seconds: float = 300.0) -> None:
        """Drop buckets untouched for a while (they would be full again anyway)."""
        now = self._clock()
        for key in [k for k, b in self._buckets.items() if now - b.updated > idle_seconds]:
            del self._buckets[key]
