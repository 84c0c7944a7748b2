"""The outbox relay: moves committed events to NATS and HTTP subscriptions, at least once and
in order per aggregate. Runs inside `kobliat serve` or alone as `kobliat relay`; any number of
relays may run against one PostgreSQL database (see `delivery_store` for the claim design).

Database work runs in threads (short transactions, never open across a network call);
delivery is asyncio, so one slow sink or aggregate only ever waits on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4

import structlog
from sqlalchemy import Connection

from kobliat import metrics
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.events import delivery_store as store
from kobliat.events import maintenance_store, sinks_store
from kobliat.events.delivery import Claim, DeliveryFailed, Outcome, RetryPolicy, Sink

log = structlog.get_logger(__name__)
T = TypeVar("T")
DISPATCH_BATCH = 1000
CLAIM_LOOPS = 2  # claim-deliver-record loops per sink, so a slow batch does not stall the sink
HOUSEKEEPING_SECONDS = 30.0


class Transport(Protocol):
    """What the relay needs from a kind of sink (NATS, HTTP)."""

    kind: str
    policy: RetryPolicy
    claim_limit: int
    lease: timedelta
    timeout: float

    async def start(self) -> None: ...
    def ready(self) -> bool: ...
    def state(self) -> str: ...
    async def deliver(self, sink: Sink, event: Any) -> None: ...
    async def forget(self, sink_id: UUID) -> None: ...
    async def close(self) -> None: ...


class Relay:
    """Dispatches outbox rows to sink heads, delivers them, and prunes what every sink has."""

    def __init__(
        self,
        db: Database,
        *,
        transports: list[Transport],
        poll_seconds: float,
        retention: timedelta,
    ) -> None:
        self.db = db
        self.transports = {t.kind: t for t in transports}
        self._poll = poll_seconds
        self._retention = retention
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._workers: dict[UUID, list[asyncio.Task[None]]] = {}
        self._wake: dict[UUID, asyncio.Event] = {}
        self._stop = asyncio.Event()
        self.counts: dict[str, dict[str, int]] = {}  # per sink label: delivered, failed

    # --- life cycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until `stop()` is called."""
        for transport in self.transports.values():
            await transport.start()
        loops = [self._dispatch_loop, self._supervise_loop, self._housekeeping_loop]
        tasks = [asyncio.create_task(self._forever(loop)) for loop in loops]
        log.info("relay started", owner=self._owner, sinks=sorted(self.transports))
        try:
            await self._stop.wait()
        finally:
            for task in tasks + [t for ts in self._workers.values() for t in ts]:
                task.cancel()
            await asyncio.gather(
                *tasks, *[t for ts in self._workers.values() for t in ts], return_exceptions=True
            )
            for transport in self.transports.values():
                await transport.close()
            with contextlib.suppress(Exception):  # else the leases expire by themselves
                await self._write(functools.partial(store.release, owner=self._owner))
            log.info("relay stopped", owner=self._owner)

    def stop(self) -> None:
        """Ask `run()` to finish; deliveries in flight are abandoned (and will be repeated)."""
        self._stop.set()

    def sink_report(self, sink: Sink) -> dict[str, Any]:
        """What this relay knows of a sink, for /readyz: connection state and its counts."""
        transport = self.transports.get(sink.kind)
        report: dict[str, Any] = {"state_here": transport.state() if transport else "no-transport"}
        report.update({f"{k}_here": v for k, v in self.counts.get(sink.label, {}).items()})
        return report

    def _count(self, sink: Sink, outcome: str) -> None:
        counts = self.counts.setdefault(sink.label, {"delivered": 0, "failed": 0})
        counts[outcome] += 1
        delivered = outcome == "delivered"
        counter = metrics.EVENTS_DELIVERED if delivered else metrics.EVENT_DELIVERY_FAILURES
        counter.labels(sink.label).inc()

    async def _forever(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a loop; when it fails (database away, a bug) log it and start it again."""
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay loop failed; retrying", loop=loop.__name__)
                await asyncio.sleep(min(5.0, self._poll * 8))

    # --- database helpers ---------------------------------------------------------------------
    async def _write(self, work: Callable[[Connection], T]) -> T:
        def unit(uow: UnitOfWork) -> T:
            return work(uow.connection)

        return await asyncio.to_thread(self.db.run, unit)

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def read() -> T:
            with self.db.reading() as conn:
                return work(conn)

        return await asyncio.to_thread(read)

    async def _nap(self, event: asyncio.Event | None = None) -> None:
        """Wait one poll interval, or less when `event` is set."""
        if event is None:
            await asyncio.sleep(self._poll)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self._poll)
        event.clear()

    # --- dispatch -----------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        # Register the NATS sink before dispatching anything, or the first rows would be
        # handed to the other sinks only.
        if "nats" in self.transports:
            await self._write(sinks_store.ensure_nats_sink)
        while True:
            if not await self._read(store.has_undispatched):
                await self._nap()
                continue
            result = await self._write(
                lambda conn: store.dispatch(
                    conn, sinks_store.all_sinks(conn), limit=DISPATCH_BATCH, now=utcnow()
                )
            )
            if result is None:  # another relay is dispatching
                await self._nap()
                continue
            count, touched = result
            for sink_id in touched:
                if sink_id in self._wake:
                    self._wake[sink_id].set()
            if count < DISPATCH_BATCH:
                await self._nap()

    # --- workers ------------------------------------------------------------------------------
    async def _supervise_loop(self) -> None:
        """Keep one set of workers per sink this relay can deliver to."""
        while True:
            wanted = {
                s.id: s
                for s in await self._read(sinks_store.all_sinks)
                if s.kind in self.transports
            }
            for sink_id in set(self._workers) - set(wanted):
                for task in self._workers.pop(sink_id):
                    task.cancel()
                self._wake.pop(sink_id, None)
                for transport in self.transports.values():
                    await transport.forget(sink_id)
            for sink_id, sink in wanted.items():
                if sink_id not in self._workers:
                    self._wake[sink_id] = asyncio.Event()
                    self._workers[sink_id] = [
                        asyncio.create_task(self._forever(functools.partial(self._work, sink)))
                        for _ in range(CLAIM_LOOPS)
                    ]
            await asyncio.sleep(max(1.0, self._poll))

    async def _work(self, sink: Sink) -> None:
        """Claim due heads of one sink, deliver them concurrently, record the outcomes."""
        transport = self.transports[sink.kind]
        wake = self._wake[sink.id]
        while True:
            if not transport.ready():
                await self._nap()
                continue
            claims = await self._claim(sink, transport)
            if not claims:
                await self._nap(wake)
                continue
            outcomes = await asyncio.gather(*(self._deliver(sink, transport, c) for c in claims))
            dead = await self._write(
                functools.partial(
                    store.record,
                    sink_id=sink.id,
                    owner=self._owner,
                    outcomes=outcomes,
                    policy=transport.policy,
                    now=utcnow(),
                )
            )
            if dead:
                metrics.EVENTS_DEAD_LETTERED.labels(sink.label).inc(dead)
                log.warning("events dead-lettered", sink=sink.label, aggregates=dead)

    async def _claim(self, sink: Sink, transport: Transport) -> list[Claim]:
        # Read first: an idle sink then costs no write transaction (SQLite's lock is shared).
        if not await self._read(lambda conn: store.has_due(conn, sink.id, now=utcnow())):
            return []
        return await self._write(
            lambda conn: store.claim(
                conn,
                sink,
                owner=self._owner,
                limit=transport.claim_limit,
                lease=transport.lease,
                now=utcnow(),
            )
        )

    async def _deliver(self, sink: Sink, transport: Transport, claim: Claim) -> Outcome:
        """Deliver a claim's events in sequence order; stop at the first failure, or before
        the lease could run out."""
        started = time.monotonic()
        budget = transport.lease.total_seconds() * 0.7 - transport.timeout
        delivered, last_created = claim.delivered, None
        for event in claim.events:
            if time.monotonic() - started > budget:
                return Outcome(
                    claim.aggregate_id,
                    claim.delivered,
                    delivered,
                    event.created_at,
                    None,
                    claim.attempts,
                )
            try:
                await transport.deliver(sink, event)
            except Exception as exc:
                self._count(sink, "failed")
                error = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
                if not isinstance(exc, DeliveryFailed):
                    log.exception("delivery raised", sink=sink.label)
                return Outcome(
                    claim.aggregate_id,
                    claim.delivered,
                    delivered,
                    event.created_at,
                    error,
                    claim.attempts,
                )
            self._count(sink, "delivered")
            delivered, last_created = event.sequence, event.created_at
        return Outcome(
            claim.aggregate_id, claim.delivered, claim.covers, last_created, None, claim.attempts
        )

    # --- housekeeping -------------------------------------------------------------------------
    async def _housekeeping_loop(self) -> None:
        while True:
            await self.prune()
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def prune(self) -> int:
        """Delete outbox rows older than the retention that every sink has; returns the count."""
        total = 0
        while True:
            cutoff = utcnow() - self._retention
            count = await self._write(functools.partial(maintenance_store.prune, cutoff=cutoff))
            total += count
            if count < 5000:
                break
        if total:
            metrics.OUTBOX_PRUNED.inc(total)
            log.info("outbox pruned", rows=total)
        return total
