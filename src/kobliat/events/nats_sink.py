"""The NATS JetStream sink: one subject per event type, JetStream acknowledges every publish.

`Nats-Msg-Id` is the event id, so when an event is published again (a relay that died after
publishing but before recording it) the stream drops the duplicate within its window.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from kobliat.events.delivery import DeliveryFailed, PendingEvent, RetryPolicy, Sink, body_of

log = structlog.get_logger(__name__)
SUBJECT_PREFIX = "kobliat."


def subject_of(event_type: str) -> str:
    """`conversation.opened` → `kobliat.conversation.opened`."""
    return SUBJECT_PREFIX + event_type


class NatsSink:
    """Publishes to JetStream; connects (and reconnects) in the background, never blocking
    start-up or the API when the server is away."""

    kind = "nats"

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        publish_timeout: float,
        policy: RetryPolicy,
        claim_limit: int,
    ) -> None:
        self.policy = policy
        self.claim_limit = claim_limit
        self.lease = timedelta(seconds=max(60.0, 6 * publish_timeout))
        self.timeout = publish_timeout
        self._url = url
        self._stream = stream
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._stream_lock = asyncio.Lock()
        self._closing = False
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin connecting; `ready()` turns True once connected."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        nc = await nats.connect(
            self._url,
            name="kobliat-relay",
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # an outage delays events; it must not end delivery
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = nc
        self._js = nc.jetstream(timeout=self.timeout)
        # Create the stream now, so consumers can attach before the first event.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self._ensure_stream(self._js)
        log.info("nats connected", servers=str(nc.connected_url.netloc) if nc.connected_url else "")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats error", error=f"{type(exc).__name__}: {exc}")

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("nats disconnected; events wait in the outbox")

    async def _on_reconnected(self) -> None:
        self._stream_ready = False  # a restarted server may have lost it
        log.info("nats reconnected")

    def ready(self) -> bool:
        """True while connected to a server."""
        return self._nc is not None and self._nc.is_connected

    def state(self) -> str:
        """For /readyz: connected, reconnecting or connecting."""
        if self._nc is None:
            return "connecting"
        return "connected" if self._nc.is_connected else "reconnecting"

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream (subjects `kobliat.>`) when it does not exist."""
        async with self._stream_lock:  # many deliveries start at once; one of them checks
            if self._stream_ready:
                return
            try:
                await js.stream_info(self._stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(name=self._stream, subjects=[SUBJECT_PREFIX + ">"])
                log.info("nats stream created", stream=self._stream)
            self._stream_ready = True

    async def deliver(self, sink: Sink, event: PendingEvent) -> None:
        """Publish one event and wait for JetStream's acknowledgement."""
        js = self._js
        if js is None:
            raise DeliveryFailed("not connected to NATS")
        headers = {"Nats-Msg-Id": str(event.event_id), "Content-Type": "application/json"}
        try:
            if not self._stream_ready:
                await self._ensure_stream(js)
            await js.publish(
                subject_of(event.event_type), body_of(event), headers=headers, timeout=self.timeout
            )
        except nats.js.errors.NoStreamResponseError as exc:
            self._stream_ready = False
            raise DeliveryFailed("no JetStream stream answered") from exc
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"NATS: {type(exc).__name__}") from exc

    async def forget(self, sink_id: UUID) -> None:
        """Nothing is kept per sink."""

    async def close(self) -> None:
        """Stop connecting and close the connection."""
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
