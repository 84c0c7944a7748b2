"""What the inbox keeps of a webhook delivery, and when a failed one is tried again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# After this many failed attempts a delivery is marked failed (with its last error) for an
# operator to look at; the backoff below spreads them over about two and a half hours.
MAX_ATTEMPTS = 12
_MAX_DELAY = timedelta(hours=1)
# Processed deliveries (raw payloads: personal data) and statuses whose message never came are
# kept this long. Meta redelivers for up to 7 days; a later repeat is still stored only once.
RETENTION = timedelta(days=7)
# A status can only miss its message when both commit at once; the sweep looks this far back.
STATUS_SWEEP_WINDOW = timedelta(hours=1)


# The webhook endpoints a delivery can come in on (inbox.channel).
CHANNELS = ("whatsapp", "telegram", "twilio", "generic")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request as received: enough to parse it again later, and no secrets."""

    channel: str  # the endpoint it came in on: whatsapp, telegram, twilio or generic
    body: bytes
    headers: dict[str, str]  # lower-case names; only those parsing or auditing needs
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery in the inbox."""

    id: int
    delivery_key: str
    delivery: Delivery
    attempts: int


def next_attempt_at(attempts: int, now: datetime) -> datetime:
    """When to try a delivery again after `attempts` failures: 2 s, 4 s, 8 s … at most 1 h."""
    return now + min(timedelta(seconds=2 ** min(attempts, 20)), _MAX_DELAY)


State = Literal["pending", "failed", "processed"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A delivery as an operator sees it: no body, no headers."""

    id: int
    channel: str
    delivery_key: str
    state: State
    attempts: int
    last_error: str | None
    received_at: datetime
    next_attempt_at: datetime
    failed_at: datetime | None
