"""What keeps the relay's long-running loops alive and its leases honest: a failure log that
speaks once per interval, the restart back-off, and a claim loop's view of its leases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import DBAPIError

from kobliat.db import dialect
from kobliat.events.delivery import DeliveryFailed

log = structlog.get_logger(__name__)

# A lease outlives one delivery's timeout by this much; the claim loop renews it every
# RENEW_SECONDS while it works, and starts a delivery only with the delivery's whole timeout
# plus START_MARGIN of lease left. So a relay that dies frees its aggregates within
# timeout + LEASE_SLACK seconds, and a live one never delivers under an expired lease.
LEASE_SLACK = 4.0
RENEW_SECONDS = 1.0
START_MARGIN = 1.0


def lease_seconds(timeout: float) -> float:
    """The lease a claim loop takes for a transport whose deliveries end within `timeout`."""
    return timeout + LEASE_SLACK


@dataclass
class HeldLeases:
    """One claim loop's leases on a batch of heads, as far as this process can be sure.

    The database sets each lease's end from its own clock when it receives the claim or renewal,
    never earlier than when this process sent it: `sure_until` counts from the sending time on
    the local monotonic clock, so it can only err on the safe side.
    """

    owner: str
    aggregates: list[str]
    length: float
    sure_until: float

    @classmethod
    def taken(
        cls, owner: str, aggregates: list[str], *, length: float, asked_at: float
    ) -> HeldLeases:
        """Leases granted by a claim sent at monotonic time `asked_at`."""
        return cls(owner, aggregates, length, asked_at + length)

    def renewed(self, asked_at: float) -> None:
        """A renewal sent at `asked_at` was confirmed for every head."""
        self.sure_until = max(self.sure_until, asked_at + self.length)

    def left(self) -> float:
        """Seconds the leases surely still hold."""
        return self.sure_until - time.monotonic()


@dataclass
class FailureLog:
    """Logs a long-running loop's failures at most once per `interval`, counting the repeats in
    between, so an outage costs a few lines instead of thousands. Database errors of every loop
    share one entry (an outage is one cause) and carry no traceback; anything else is logged
    with one. The relay's loops share one; the inbox worker, the sender and a process waiting
    for its database at start each have their own (`message` says whose)."""

    interval: float = 30.0
    message: str = "relay loop failed; retrying"
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def failed(self, what: str, exc: BaseException) -> None:
        """Record one failure of the loop `what`; logs it unless logged within the interval."""
        unavailable = dialect.is_unavailable(exc)
        key = "database" if unavailable else what
        now = time.monotonic()
        logged_at, repeats = self._last.get(key, (float("-inf"), 0))
        if now - logged_at < self.interval:
            self._last[key] = (logged_at, repeats + 1)
            return
        self._last[key] = (now, 0)
        log.warning(
            self.message,
            loop=what,
            error=dialect.describe_unavailable(exc) if unavailable else summary(exc),
            repeats_since_last_log=repeats,
            exc_info=None if unavailable or isinstance(exc, OSError) else exc,
        )


def summary(exc: BaseException) -> str:
    """A one-line description of an error: its type and the first line of the driver's message
    (never the statement or its parameters)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200] if lines else ''}"


@dataclass
class Backoff:
    """Waits between restarts of a failing loop: doubling from `base` up to `ceiling`, back to
    `base` once the loop has run for a while without failing."""

    base: float
    ceiling: float = 5.0
    _current: float = 0.0

    def next_wait(self, ran_for: float) -> float:
        """The pause before restarting a loop that failed after running `ran_for` seconds."""
        if ran_for > 4 * self.ceiling or self._current == 0.0:
            self._current = self.base
        else:
            self._current = min(self.ceiling, self._current * 2)
        return self._current


def describe_failure(exc: Exception, timeout: float) -> str:
    """The error stored on a head for a failed delivery (no payload, no secrets)."""
    if isinstance(exc, DeliveryFailed):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return type(exc).__name__
