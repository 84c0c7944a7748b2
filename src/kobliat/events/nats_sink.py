"""The NATS JetStream sink: one subject per event type, JetStream acknowledges every publish.

`Nats-Msg-Id` is the event id, so when an event is published again (a relay that died after
publishing but before recording it) the stream drops the duplicate within its duplicate
window. The stream is kept at the configured replica count and window: created so, and
updated when an existing stream differs and JetStream allows the change; what it refuses is
logged and shown in `/readyz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo

from kobliat import metrics, tracing
from kobliat.events.delivery import DeliveryFailed, PendingEvent, RetryPolicy, Sink, body_of

log = structlog.get_logger(__name__)
SUBJECT_PREFIX = "kobliat."
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
RECONNECT_WAIT_SECONDS = 1.0


def subject_of(event_type: str) -> str:
    """`conversation.opened` → `kobliat.conversation.opened`."""
    return SUBJECT_PREFIX + event_type


def redact_urls(text: str) -> str:
    """Hide credentials in URLs: `nats://user:secret@host:4222` → `nats://***@host:4222`."""
    return _CREDENTIALS.sub("***@", text)


def server_list(urls: str) -> list[str]:
    """KOBLIAT_NATS_URL's comma-separated servers, trimmed, without empties."""
    return [u.strip() for u in urls.split(",") if u.strip()]


class NatsSink:
    """Publishes to JetStream; connects (and reconnects, to any listed or discovered server)
    in the background, never blocking start-up or the API when the servers are away."""

    kind = "nats"

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        publish_timeout: float,
        policy: RetryPolicy,
        claim_limit: int,
        replicas: int = 1,
        duplicate_window: float = 86400.0,
    ) -> None:
        self.policy = policy
        self.claim_limit = claim_limit
        self.timeout = publish_timeout
        self._servers = server_list(url)
        self._stream = stream
        self._replicas = replicas
        self._window = duplicate_window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._stream_lock = asyncio.Lock()
        self._closing = False
        self._connecting: asyncio.Task[None] | None = None
        self._stream_replicas: int | None = None
        self._stream_window: float | None = None
        self._problem: str | None = None

    async def start(self) -> None:
        """Begin connecting; `ready()` turns True once connected."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        # nats-py reconnects forever once connected, but a first connect that finds no server
        # raises: try again until one answers.
        while not self._closing:
            try:
                nc = await nats.connect(
                    servers=self._servers,
                    name="kobliat-relay",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # an outage delays events; never ends delivery
                    reconnect_time_wait=RECONNECT_WAIT_SECONDS,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning("nats unreachable; retrying", error=_describe(exc))
                await asyncio.sleep(RECONNECT_WAIT_SECONDS)
                continue
            break
        else:
            return
        self._nc = nc
        self._js = nc.jetstream(timeout=self.timeout)
        self._note_server()
        # Create the stream now, so consumers can attach before the first event.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self._ensure_stream(self._js)
        log.info("nats connected", server=self.server() or "")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats error", error=_describe(exc))

    async def _on_disconnected(self) -> None:
        self._note_server()
        if not self._closing:
            log.warning("nats disconnected; events wait in the outbox")

    async def _on_reconnected(self) -> None:
        self._stream_ready = False  # a restarted server may have lost it
        self._note_server()
        log.info("nats reconnected", server=self.server() or "")

    def ready(self) -> bool:
        """True while connected to a server."""
        return self._nc is not None and self._nc.is_connected

    def state(self) -> str:
        """For /readyz: connected, reconnecting or connecting."""
        if self._nc is None:
            return "connecting"
        return "connected" if self._nc.is_connected else "reconnecting"

    def server(self) -> str | None:
        """`host:port` of the server this sink is connected to (never credentials)."""
        url = self._nc.connected_url if self._nc is not None and self._nc.is_connected else None
        if url is None or url.hostname is None:
            return None
        return f"{url.hostname}:{url.port or 4222}"

    def report(self) -> dict[str, Any]:
        """The connection and the stream as last seen, for /readyz."""
        return {
            "state": self.state(),
            "server": self.server(),
            "stream": self._stream,
            "replicas": self._stream_replicas,
            "replicas_wanted": self._replicas,
            "duplicate_window_seconds": self._stream_window,
            "problem": self._problem,
        }

    def _note_server(self) -> None:
        metrics.NATS_CONNECTED.clear()
        if (server := self.server()) is not None:
            metrics.NATS_CONNECTED.labels(server).set(1)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream (subjects `kobliat.>`) when missing, else bring its replicas and
        duplicate window to the settings where JetStream allows it."""
        async with self._stream_lock:  # many deliveries start at once; one of them checks
            if self._stream_ready:
                return
            try:
                info = await js.stream_info(self._stream)
            except nats.js.errors.NotFoundError:
                info = await self._create(js)
            else:
                info = await self._reconcile(js, info)
            self._note_stream(info)
            self._stream_ready = True

    async def _create(self, js: JetStreamContext) -> StreamInfo:
        try:
            info = await js.add_stream(
                name=self._stream,
                subjects=[SUBJECT_PREFIX + ">"],
                num_replicas=self._replicas,
                duplicate_window=self._window,
            )
        except nats.js.errors.APIError as exc:
            self._refused(f"JetStream refused to create the stream: {exc.description}")
            raise
        log.info("nats stream created", stream=self._stream, replicas=self._replicas)
        return self._check(info, [])

    async def _reconcile(self, js: JetStreamContext, info: StreamInfo) -> StreamInfo:
        """Update what differs, one setting at a time, so one refusal (replicas on a single
        server) does not keep the other (the window) from being applied."""
        wanted = {"duplicate_window": self._window, "num_replicas": self._replicas}
        refusals = []
        for field, value in wanted.items():
            config = info.config
            if _same(getattr(config, field), value):
                continue
            try:
                info = await js.update_stream(_evolved(config, **{field: value}))
                log.info("nats stream updated", stream=self._stream, **{field: value})
            except nats.js.errors.APIError as exc:
                refusals.append(f"{field} {getattr(config, field)} → {value}: {exc.description}")
        return self._check(info, refusals)

    def _check(self, info: StreamInfo, refusals: list[str]) -> StreamInfo:
        """Note what the stream ended up with; anything short of the settings is a problem."""
        replicas, window = info.config.num_replicas, info.config.duplicate_window
        if refusals:
            self._refused("JetStream refused to update the stream: " + "; ".join(refusals))
        elif not (_same(replicas, self._replicas) and _same(window, self._window)):
            self._refused(
                f"the stream has {replicas} replica(s) and a {window} s duplicate window; "
                f"the settings ask for {self._replicas} and {self._window} s"
            )
        else:
            self._problem = None
        return info

    def _refused(self, problem: str) -> None:
        self._problem = problem
        log.error("nats stream settings not applied", stream=self._stream, problem=problem)

    def _note_stream(self, info: StreamInfo) -> None:
        self._stream_replicas = info.config.num_replicas
        self._stream_window = info.config.duplicate_window
        metrics.NATS_STREAM_REPLICAS.set(self._stream_replicas or 0)
        metrics.NATS_STREAM_SETTINGS_APPLIED.set(0 if self._problem else 1)

    async def deliver(self, sink: Sink, event: PendingEvent) -> None:
        """Publish one event and wait for JetStream's acknowledgement."""
        js = self._js
        if js is None:
            raise DeliveryFailed("not connected to NATS")
        headers = {"Nats-Msg-Id": str(event.event_id), "Content-Type": "application/json"}
        headers.update(tracing.headers_of(event.envelope))
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
        metrics.NATS_CONNECTED.clear()


def report_of(transports: dict[str, Any]) -> dict[str, Any] | None:
    """The NATS sink's report among a relay's transports, None when it has none."""
    sink = transports.get("nats")
    return sink.report() if isinstance(sink, NatsSink) else None


def _describe(exc: BaseException) -> str:
    return redact_urls(f"{type(exc).__name__}: {exc}")


def _same(current: Any, wanted: float) -> bool:
    return current is not None and abs(float(current) - wanted) < 1e-3


def _evolved(config: StreamConfig, **changes: Any) -> StreamConfig:
    """The stream's own configuration with `changes`, minus what the server sets itself."""
    updated = config.evolve(**changes)
    if updated.metadata:  # `_nats.*` keys are the server's; sending them back is refused
        updated.metadata = {k: v for k, v in updated.metadata.items() if not k.startswith("_")}
    return updated
