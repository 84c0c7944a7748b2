"""Event delivery as plain data: sinks, claimed aggregate heads, outcomes and the retry policy.

No SQL or I/O here; `delivery_store` persists these and `relay` drives them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

# The NATS stream is one sink shared by every relay; it has a fixed id so all agree on it.
NATS_SINK_ID = UUID("00000000-0000-0000-0000-00000000a75a")


class DeliveryFailed(Exception):
    """The sink did not acknowledge an event (error status, timeout, broker unavailable)."""


@dataclass(frozen=True, slots=True)
class Sink:
    """A destination: the NATS stream or one HTTP subscription."""

    id: UUID
    kind: str  # "nats" | "http"
    url: str | None
    event_types: tuple[str, ...] | None  # None: every event
    secret: str | None
    created_at: datetime

    @property
    def label(self) -> str:
        """The name used in metrics and logs ("nats" or the subscription id)."""
        return "nats" if self.kind == "nats" else str(self.id)

    def wants(self, event_type: str) -> bool:
        """True when this sink's filter lets `event_type` through."""
        return self.event_types is None or any(
            matches(pattern, event_type) for pattern in self.event_types
        )


def matches(pattern: str, event_type: str) -> bool:
    """`conversation.opened` matches itself; `conversation.*` every type under it; `*` all."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One outbox row waiting for a sink."""

    event_id: UUID
    event_type: str
    sequence: int
    envelope: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """An aggregate's head leased to one relay for one sink, with the events to deliver next.

    `covers` is the last sequence the loaded events account for (events between that the sink
    does not want are skipped, but still count as passed).
    """

    aggregate_id: str
    delivered: int
    attempts: int
    covers: int
    events: tuple[PendingEvent, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery attempt of one claim achieved."""

    aggregate_id: str
    claimed_from: int
    delivered_to: int  # last sequence now acknowledged (== claimed_from when none)
    pending_since: datetime | None  # creation time of the first event still undelivered
    error: str | None  # None: everything the claim covered was acknowledged
    attempts: int  # attempts the claim had before this one

    @property
    def progressed(self) -> bool:
        """True when at least one event was acknowledged."""
        return self.delivered_to > self.claimed_from


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; after `max_attempts` (None: never) the head is dead."""

    base_seconds: float
    max_seconds: float
    max_attempts: int | None

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt `attempts + 1`: base·2^(attempts-1), capped, jittered to 50-100%
        so that heads failing together do not retry in lockstep."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))

    def is_exhausted(self, attempts: int) -> bool:
        """True when `attempts` failed attempts are the last allowed."""
        return self.max_attempts is not None and attempts >= self.max_attempts


def body_of(event: PendingEvent) -> bytes:
    """The bytes every sink receives: the CloudEvents JSON envelope, compact."""
    return json.dumps(event.envelope, separators=(",", ":"), ensure_ascii=False).encode()
