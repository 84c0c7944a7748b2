"""Load for fault-injection tests: signed generic webhooks posted over real HTTP by many
concurrent senders that, like providers, retry what was not answered 2xx; every answer is
tallied (status, problem type, latency) with the time it arrived."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kobliat.channels.samples import signing
from tests.e2e.webhooks import GENERIC_SECRET

BUSINESS = {"type": "email", "id": "support@clinic.example.com"}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Hook:
    """One provider delivery of one message: a retry reuses its delivery id and body."""

    delivery_id: str
    message_id: str
    body: bytes


def generic_hook(prefix: str, n: int, *, senders: int) -> Hook:
    """The `n`th message of a run, from one of `senders` customers (so each conversation gets
    many messages), as a generic webhook."""
    message = {
        "id": f"{prefix}-m{n}",
        "timestamp": (_EPOCH + timedelta(seconds=n)).isoformat(),
        "from": {"type": "email", "id": f"{prefix}-s{n % senders}@example.com"},
        "to": BUSINESS,
        "content_type": "text",
        "body": f"message {n}",
    }
    return Hook(f"{prefix}-d{n}", message["id"], json.dumps(message).encode())


def signed_headers(hook: Hook) -> dict[str, str]:
    """Standard Webhooks headers signed now (a provider's retry signs again, same id)."""
    return signing.generic_headers(
        hook.body, GENERIC_SECRET, msg_id=hook.delivery_id, timestamp=datetime.now(UTC)
    )


@dataclass
class Tally:
    """What the senders saw. `timeline` holds (monotonic time, status; 0 = no answer)."""

    sent: int = 0
    attempts: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    acknowledged: set[str] = field(default_factory=set)
    acknowledged_at: dict[str, float] = field(default_factory=dict)  # first 2xx, monotonic
    receipts: Counter[str] = field(default_factory=Counter)  # the 2xx answers' `status`
    slowest_answer: float = 0.0
    timeline: list[tuple[float, int]] = field(default_factory=list)
    # (sent, answered, status) per attempt: a request sent before a fault may be answered after
    spans: list[tuple[float, float, int]] = field(default_factory=list)

    def record(self, status: int, started: float, answer: httpx.Response | None) -> None:
        """Count one attempt's outcome."""
        now = time.monotonic()
        self.attempts += 1
        self.timeline.append((now, status))
        self.spans.append((started, now, status))
        if status:
            self.statuses[status] += 1
            self.slowest_answer = max(self.slowest_answer, now - started)
        if answer is not None and status >= 300:
            self.problems[f"{status} {_problem_type(answer)}"] += 1

    def server_errors(self) -> int:
        """Answers with a 5xx status other than 503 (an unavailable dependency)."""
        return sum(n for status, n in self.statuses.items() if status >= 500 and status != 503)

    def first_2xx_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first 2xx answered after it."""
        times = [t for t, s in self.timeline if t >= moment and 200 <= s < 300]
        return min(times) - moment if times else None

    def summary(self) -> dict[str, Any]:
        """Counts for a test's printout."""
        return {
            "sent": self.sent,
            "attempts": self.attempts,
            "acknowledged": len(self.acknowledged),
            "receipts": dict(self.receipts),
            "statuses": dict(sorted(self.statuses.items())),
            "problems": dict(self.problems),
            "no_answer": dict(self.transport_errors),
            "slowest_answer_s": round(self.slowest_answer, 3),
        }


def _receipt(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("status", "?"))
    except (ValueError, AttributeError):
        return "?"


def _problem_type(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("type", "?")).rsplit("/", 1)[-1]
    except (ValueError, AttributeError):
        return answer.text[:60]


async def post(client: httpx.AsyncClient, hook: Hook, tally: Tally) -> int:
    """POST one attempt of a hook; its status, 0 when no answer came."""
    started = time.monotonic()
    try:
        headers = signed_headers(hook)
        answer = await client.post("/webhooks/generic", content=hook.body, headers=headers)
    except httpx.TransportError as exc:
        tally.transport_errors[type(exc).__name__] += 1
        tally.record(0, started, None)
        return 0
    tally.record(answer.status_code, started, answer)
    if 200 <= answer.status_code < 300:
        tally.acknowledged.add(hook.message_id)
        tally.acknowledged_at.setdefault(hook.message_id, time.monotonic())
        tally.receipts[_receipt(answer)] += 1
    return answer.status_code


@dataclass
class Load:
    """Senders posting new hooks at `rate` per second (at most `limit`) with `concurrency`
    requests in flight, in a background thread, until `stop()`; then, with `retry`, each hook
    not answered 2xx is posted again (backoff up to 2 s) until `finish()`'s deadline."""

    base_url: str
    prefix: str
    senders: int = 20
    rate: float = 50.0
    limit: int = 1000
    concurrency: int = 16
    retry: bool = True
    request_timeout: float = 20.0
    tally: Tally = field(default_factory=Tally)
    hooks: list[Hook] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _give_up: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        """Begin sending in the background."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Send no new hooks (retries go on)."""
        self._stop.set()

    def finish(self, timeout: float = 120.0) -> Tally:
        """Stop new hooks and wait (bounded) until every hook was answered 2xx or given up."""
        self.stop()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._give_up.set()
            self._thread.join(30)
        return self.tally

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.request_timeout, limits=limits
        ) as client:
            tasks = []
            started = time.monotonic()
            while not self._stop.is_set() and len(self.hooks) < self.limit:
                hook = generic_hook(self.prefix, len(self.hooks), senders=self.senders)
                self.hooks.append(hook)
                self.tally.sent += 1
                tasks.append(asyncio.create_task(self._deliver(client, gate, hook)))
                due = started + len(self.hooks) / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _deliver(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, hook: Hook
    ) -> None:
        backoff = 0.1
        for _ in range(1000):  # bounded; the deadline in finish() bounds the time
            async with gate:
                status = await post(client, hook, self.tally)
            if 200 <= status < 300 or not self.retry or self._give_up.is_set():
                return
            await asyncio.sleep(backoff)
            backoff = min(2.0, backoff * 2)


def storm(base_url: str, hooks: list[Hook], *, copies: int = 3, concurrency: int = 24) -> Tally:
    """Post every hook `copies` times at once (a provider's retry storm); no further retries."""

    async def run() -> Tally:
        tally = Tally(sent=len(hooks))
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

            async def one(hook: Hook) -> None:
                async with gate:
                    await post(client, hook, tally)

            await asyncio.gather(*(one(hook) for hook in hooks for _ in range(copies)))
        return tally

    return asyncio.run(run())


@dataclass
class Probe:
    """GETs `url` every `every` seconds in a thread, keeping (monotonic time, status, JSON
    body or None); status 0 = no answer within `timeout`."""

    url: str
    every: float = 0.2
    timeout: float = 10.0
    seen: list[tuple[float, int, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.wait(self.every):
                try:
                    answer = client.get(self.url)
                except httpx.TransportError:
                    self.seen.append((time.monotonic(), 0, None))
                    continue
                try:
                    body = answer.json()
                except ValueError:
                    body = None
                self.seen.append((time.monotonic(), answer.status_code, body))

    def between(self, start: float, end: float) -> list[tuple[float, int, Any]]:
        """What was seen from `start` to `end` (monotonic times)."""
        return [s for s in self.seen if start <= s[0] <= end]

    def first_after(self, moment: float, status: int) -> float | None:
        """Seconds from `moment` to the first answer with this status."""
        times = [t for t, s, _ in self.seen if t >= moment and s == status]
        return min(times) - moment if times else None
