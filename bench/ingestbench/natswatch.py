"""What reached NATS and what waits in the outbox: a JetStream subscriber in its own process, and
a once-a-second sampler of events written and not yet acknowledged by the stream."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

STREAM_SUBJECTS = "kobliat.>"  # kobliat publishes every event type under `kobliat.<type>`


# --------------------------------------------------------------------------------------------
# The subscriber: an ordered push consumer on the whole stream, in a process of its own (so its
# callbacks do not share a GIL with the load generator).
# --------------------------------------------------------------------------------------------
async def _watch(url: str, stream: str, out: Path, ready: Event, stop: Event, seen: Any) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(url)
    js = nc.jetstream()
    while True:  # the relay creates the stream when it connects
        try:
            await js.stream_info(stream)
            break
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.1)
    rows: list[tuple[str, float, float]] = []

    async def on_message(msg: Any) -> None:
        arrived = time.time()
        stored = msg.metadata.timestamp.timestamp()  # when the stream stored it (its clock)
        rows.append(((msg.headers or {}).get("Nats-Msg-Id", ""), stored, arrived))
        seen.value += 1

    sub = await js.subscribe(STREAM_SUBJECTS, stream=stream, ordered_consumer=True, cb=on_message)
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await sub.unsubscribe()
    await nc.close()
    out.write_text("".join(f"{i}\t{s:.6f}\t{a:.6f}\n" for i, s, a in rows))


def _watch_process(url: str, stream: str, out: str, ready: Event, stop: Event, seen: Any) -> None:
    asyncio.run(_watch(url, stream, Path(out), ready, stop, seen))


class Watcher:
    """Every message of the stream: (event id, stored at, arrived at the subscriber)."""

    def __init__(self, url: str, stream: str, out: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.out = out
        self._ready = context.Event()
        self._stop = context.Event()
        self._seen: Synchronized[int] = context.Value("q", 0, lock=False)  # type: ignore[assignment]
        self._process = context.Process(
            target=_watch_process,
            args=(url, stream, str(out), self._ready, self._stop, self._seen),
            daemon=True,
        )

    def start(self, timeout: float = 60) -> None:
        """Start and wait until subscribed (the stream exists once the relay has connected)."""
        self._process.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"no stream to subscribe to within {timeout:.0f} s")

    @property
    def seen(self) -> int:
        """Messages received so far."""
        return int(self._seen.value)

    def stop(self) -> dict[str, tuple[float, float]]:
        """Stop; returns event id → (stored at, arrived at), epoch seconds."""
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
        found: dict[str, tuple[float, float]] = {}
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                event_id, stored, arrived = line.split("\t")
                found.setdefault(event_id, (float(stored), float(arrived)))
        return found


# --------------------------------------------------------------------------------------------
# The outbox, sampled: events written, and events not yet acknowledged by the stream.
# --------------------------------------------------------------------------------------------
# Not acknowledged = rows the relay has not dispatched yet (`outbox.published_at` NULL) plus, per
# aggregate, the events dispatched to the NATS sink's head but not yet acknowledged (an
# aggregate's sequences are consecutive and the NATS sink takes every type, so the difference
# of the head's target and delivered sequences counts events).
BACKLOG_SQL = """
SELECT (SELECT count(*) FROM outbox),
       (SELECT count(*) FROM outbox WHERE published_at IS NULL),
       (SELECT coalesce(sum(target_sequence - delivered_sequence), 0) FROM delivery_heads)
"""


@dataclass
class Sample:
    at: float  # monotonic seconds
    written: int
    undispatched: int
    unacknowledged: int  # dispatched to the sink's head, not yet acknowledged

    @property
    def backlog(self) -> int:
        return self.undispatched + self.unacknowledged


@dataclass
class Sampler:
    """Samples the outbox once a second in a thread of its own, until stopped."""

    url: str
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._engine = create_engine(self.url, pool_size=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> Sample:
        """One sample now."""
        with self._engine.connect() as conn:
            written, undispatched, unacked = conn.execute(text(BACKLOG_SQL)).one()
        return Sample(time.monotonic(), int(written), int(undispatched), int(unacked))

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.sample())
            next_at += self.every
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> list[Sample]:
        """Stop sampling; returns the samples."""
        self._stop.set()
        self._thread.join(10)
        self._engine.dispose()
        return self.samples


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
