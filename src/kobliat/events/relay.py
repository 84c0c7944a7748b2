"""The outbox relay: moves committed events to NATS and HTTP subscriptions, at least once and
in order per aggregate. Runs inside `kobliat serve` or alone as `kobliat relay`; any number of
relays may run against one PostgreSQL database (see `delivery_store` for the claim design).

Database work runs in threads (short transactions, never open across a network call);
delivery is asyncio, so one slow sink or aggregate only ever waits on itself. Every loop
survives any failure (a database restart, a bug in one iteration): it is logged once per
interval, backed off and run again, and a loop that ends anyway is started again. Leases are
short and renewed while a batch is delivered (see `loops`), so a dead relay's aggregates are
taken over within seconds.
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

from kobliat import metrics, tracing
from kobliat.aio import wait_event
from kobliat.db import dialect
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.events import delivery_store as store
from kobliat.events import maintenance_store, sinks_store
from kobliat.events.delivery import Claim, DeliveryFailed, Outcome, RetryPolicy, Sink
from kobliat.events.loops import (
    RENEW_SECONDS,
    START_MARGIN,
    Backoff,
    FailureLog,
    HeldLeases,
    describe_failure,
    lease_seconds,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")
DISPATCH_BATCH = 1000
DISPATCH_PAUSE = 0.01  # seconds between dispatch passes while rows keep arriving
CLAIM_LOOPS = 2  # claim-deliver-record loops per sink, so a slow batch does not stall the sink
HOUSEKEEPING_SECONDS = 30.0


class Transport(Protocol):
    """What the relay needs from a kind of sink (NATS, HTTP)."""

    kind: str
    policy: RetryPolicy
    claim_limit: int
    timeout: float  # every delivery ends (acknowledged or not) within this many seconds

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
        self._owners: set[str] = set()  # one per claim loop started, for release at the end
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._workers: dict[UUID, list[asyncio.Task[None]]] = {}
        self._wake: dict[UUID, asyncio.Event] = {}
        self._stop = asyncio.Event()
        self._failures = FailureLog()
        self.counts: dict[str, dict[str, int]] = {}  # per sink label: delivered, failed

    # --- life cycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until `stop()` is called."""
        for transport in self.transports.values():
            await transport.start()
        log.info("relay started", owner=self._owner, sinks=sorted(self.transports))
        try:
            while not self._stop.is_set():
                self._keep_loops_running()
                await wait_event(self._stop, max(1.0, self._poll))
        finally:
            tasks = [*self._loops.values(), *(t for ts in self._workers.values() for t in ts)]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for transport in self.transports.values():
                await transport.close()
            with contextlib.suppress(Exception):  # else the leases expire by themselves
                await self._write(functools.partial(store.release, owners=self._owners))
            log.info("relay stopped", owner=self._owner)

    def _keep_loops_running(self) -> None:
        """Start the relay's own loops, and start again any that ended."""
        wanted = {
            "dispatch": self._dispatch_loop,
            "supervise": self._supervise_loop,
            "housekeeping": self._housekeeping_loop,
        }
        for name, loop in wanted.items():
            task = self._loops.get(name)
            if task is not None and task.done():
                log.error("relay loop ended; starting it again", loop=name)
            if task is None or task.done():
                self._loops[name] = asyncio.create_task(self._forever(name, loop))

    def stop(self) -> None:
        """Ask `run()` to finish; deliveries in flight are abandoned (and will be repeated)."""
        self._stop.set()

    def sink_report(self, sink: Sink) -> dict[str, Any]:
        """What this relay knows of a sink, for /readyz: connection state, whether its claim
        loops run, and its counts."""
        transport = self.transports.get(sink.kind)
        report: dict[str, Any] = {"state_here": transport.state() if transport else "no-transport"}
        workers = self._workers.get(sink.id)
        if transport is not None and workers is not None:
            report["loops_running_here"] = sum(not task.done() for task in workers)
        report.update({f"{k}_here": v for k, v in self.counts.get(sink.label, {}).items()})
        return report

    def loops_report(self) -> dict[str, bool]:
        """For /readyz: whether each of the relay's own loops and each sink's claim loops run
        (a sink whose loops are not all running is named by its label)."""
        report = {name: not task.done() for name, task in self._loops.items()}
        for workers in self._workers.values():
            for task in workers:
                if task.done():
                    report[task.get_name()] = False
        return report

    def _count(self, sink: Sink, outcome: str) -> None:
        counts = self.counts.setdefault(sink.label, {"delivered": 0, "failed": 0})
        counts[outcome] += 1
        delivered = outcome == "delivered"
        counter = metrics.EVENTS_DELIVERED if delivered else metrics.EVENT_DELIVERY_FAILURES
        counter.labels(sink.label).inc()

    async def _forever(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a loop; whenever it fails (database away, a bug), log it (once per interval),
        back off and start it again. Only cancellation ends it."""
        backoff = Backoff(base=min(1.0, self._poll * 4))
        while True:
            started = time.monotonic()
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures.failed(name, exc)
            else:
                log.error("relay loop returned; starting it again", loop=name)
            await asyncio.sleep(backoff.next_wait(time.monotonic() - started))

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
        await wait_event(event, self._poll)
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
                    conn,
                    sinks_store.all_sinks(conn),
                    limit=DISPATCH_BATCH,
                    now=dialect.database_now(conn),
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
                # Rows came in: more are likely on their way. Look again soon rather than after
                # a whole poll interval, which would add up to it to every event's latency.
                await asyncio.sleep(min(self._poll, DISPATCH_PAUSE))

    # --- workers ------------------------------------------------------------------------------
    async def _supervise_loop(self) -> None:
        """Keep CLAIM_LOOPS running claim loops per sink this relay can deliver to."""
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
                self._wake.setdefault(sink_id, asyncio.Event())
                workers = self._workers.setdefault(sink_id, [])
                for slot in range(CLAIM_LOOPS):
                    if slot < len(workers) and not workers[slot].done():
                        continue
                    if slot < len(workers):
                        log.error("claim loop ended; starting it again", sink=sink.label)
                        workers[slot] = self._start_worker(sink, slot)
                    else:
                        workers.append(self._start_worker(sink, slot))
            await asyncio.sleep(max(1.0, self._poll))

    def _start_worker(self, sink: Sink, slot: int) -> asyncio.Task[None]:
        # Each claim loop has its own owner id: its outcomes and renewals then only ever touch
        # the leases it took itself.
        owner = f"{self._owner}/{uuid4().hex[:6]}"
        self._owners.add(owner)
        name = f"claim {sink.label} #{slot}"
        work = functools.partial(self._work, sink, owner)
        return asyncio.create_task(self._forever(name, work), name=name)

    async def _work(self, sink: Sink, owner: str) -> None:
        """Claim due heads of one sink, deliver them concurrently while renewing their leases,
        record the outcomes."""
        transport = self.transports[sink.kind]
        wake = self._wake[sink.id]
        while True:
            if not transport.ready():
                await self._nap()
                continue
            claims, leases = await self._claim(sink, transport, owner)
            if not claims:
                await self._nap(wake)
                continue
            renewing = asyncio.create_task(self._renew(sink, transport, leases))
            try:
                outcomes = await asyncio.gather(
                    *(self._deliver(sink, transport, c, leases) for c in claims)
                )
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            dead = await self._write(
                functools.partial(self._record, sink, transport, owner=owner, outcomes=outcomes)
            )
            if dead:
                metrics.EVENTS_DEAD_LETTERED.labels(sink.label).inc(dead)
                log.warning("events dead-lettered", sink=sink.label, aggregates=dead)

    @staticmethod
    def _record(
        sink: Sink, transport: Transport, conn: Connection, *, owner: str, outcomes: list[Outcome]
    ) -> int:
        now = dialect.database_now(conn)
        return store.record(
            conn, sink.id, owner=owner, outcomes=outcomes, policy=transport.policy, now=now
        )

    async def _claim(
        self, sink: Sink, transport: Transport, owner: str
    ) -> tuple[list[Claim], HeldLeases]:
        length = lease_seconds(transport.timeout)
        asked_at = time.monotonic()
        claims: list[Claim] = []
        # Read first: an idle sink then costs no write transaction (SQLite's lock is shared).
        if await self._read(
            lambda conn: store.has_due(conn, sink.id, now=dialect.database_now(conn))
        ):
            claims = await self._write(
                lambda conn: store.claim(
                    conn,
                    sink,
                    owner=owner,
                    limit=transport.claim_limit,
                    lease=timedelta(seconds=length),
                    now=dialect.database_now(conn),
                )
            )
        aggregates = [c.aggregate_id for c in claims]
        return claims, HeldLeases.taken(owner, aggregates, length=length, asked_at=asked_at)

    async def _renew(self, sink: Sink, transport: Transport, leases: HeldLeases) -> None:
        """Extend the batch's leases while its deliveries run. A renewal that fails (database
        away) is not fatal: the deliveries stop starting new events before the leases end."""
        lease = timedelta(seconds=leases.length)
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            asked_at = time.monotonic()
            try:
                held = await self._write(
                    lambda conn: store.renew(
                        conn,
                        sink.id,
                        owner=leases.owner,
                        aggregates=leases.aggregates,
                        lease=lease,
                        now=dialect.database_now(conn),
                    )
                )
            except Exception as exc:
                self._failures.failed(f"lease renewal {sink.label}", exc)
                continue
            if held == len(leases.aggregates):
                leases.renewed(asked_at)

    async def _deliver(
        self, sink: Sink, transport: Transport, claim: Claim, leases: HeldLeases
    ) -> Outcome:
        """Deliver a claim's events in sequence order; stop at the first failure, or when the
        lease might not outlast one more delivery."""
        delivered, last_created = claim.delivered, None
        for event in claim.events:
            if leases.left() < transport.timeout + START_MARGIN:
                return Outcome(
                    claim.aggregate_id,
                    claim.delivered,
                    delivered,
                    event.created_at,
                    None,
                    claim.attempts,
                )
            try:
                # The transport bounds its own deliveries; this is the backstop that keeps a
                # misbehaving one inside the lease.
                async with asyncio.timeout(transport.timeout + START_MARGIN / 2):
                    with tracing.span(
                        "kobliat.deliver",
                        parent=event.envelope,
                        sink=sink.label,
                        event_type=event.event_type,
                        event_id=str(event.event_id),
                    ):
                        await transport.deliver(sink, event)
            except Exception as exc:
                self._count(sink, "failed")
                error = describe_failure(exc, transport.timeout)
                if not isinstance(exc, (DeliveryFailed, TimeoutError)):
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
