"""HTTP subscriptions: each event POSTed as CloudEvents JSON (structured mode), signed the
Standard Webhooks way."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import httpcore
import httpx

from kobliat import tracing
from kobliat.events import signing
from kobliat.events.delivery import DeliveryFailed, PendingEvent, RetryPolicy, Sink, body_of
from kobliat.events.destinations import PinnedBackend


class HttpSink:
    """Delivers to HTTP subscriptions; every subscription has its own connection pool, so a
    slow subscriber can only use up its own connections."""

    kind = "http"
    content_type = "application/cloudevents+json"
    max_answer_bytes = 64 * 1024  # of a subscriber's answer body; the rest is never read

    def __init__(
        self, *, timeout: float, concurrency: int, policy: RetryPolicy, allow_private: bool
    ) -> None:
        self.policy = policy
        self.claim_limit = concurrency
        self.timeout = timeout  # for the whole request: connect, send, answer
        self._allow_private = allow_private
        self._clients: dict[UUID, httpx.AsyncClient] = {}

    async def start(self) -> None:
        """Nothing to connect up front."""

    def ready(self) -> bool:
        """HTTP subscriptions are always worth trying."""
        return True

    def state(self) -> str:
        """For /readyz."""
        return "ok"

    async def deliver(self, sink: Sink, event: PendingEvent) -> None:
        """POST one event; a 2xx answer is the acknowledgement. The whole request, answer
        included, ends within `timeout`: a subscriber that trickles its answer cannot hold the
        delivery (and the aggregate's lease) longer."""
        assert sink.url is not None and sink.secret is not None
        body = body_of(event)
        headers = signing.headers(
            sink.secret, msg_id=str(event.event_id), timestamp=int(time.time()), body=body
        )
        headers["content-type"] = self.content_type
        headers["user-agent"] = "kobliat-webhooks/1"
        headers.update(tracing.headers_of(event.envelope))
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._post(sink, body, headers)
        except TimeoutError as exc:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from exc
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")

    async def _post(self, sink: Sink, body: bytes, headers: dict[str, str]) -> int:
        """Send, read at most `max_answer_bytes` of the answer, return its status."""
        assert sink.url is not None
        request = self._client(sink.id).stream("POST", sink.url, content=body, headers=headers)
        async with request as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > self.max_answer_bytes:
                    break  # leaving the block closes the connection instead of reading on
            return response.status_code

    def _client(self, sink_id: UUID) -> httpx.AsyncClient:
        client = self._clients.get(sink_id)
        if client is None:
            size = 2 * self.claim_limit  # two claim loops per sink, each up to claim_limit
            pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                max_connections=size,
                max_keepalive_connections=size,
                network_backend=PinnedBackend(allow_private=self._allow_private),
            )
            client = httpx.AsyncClient(
                transport=_PoolTransport(pool),
                timeout=httpx.Timeout(self.timeout, pool=None),
                follow_redirects=False,
            )
            self._clients[sink_id] = client
        return client

    async def forget(self, sink_id: UUID) -> None:
        """Close the pool of a subscription that is gone."""
        client = self._clients.pop(sink_id, None)
        if client is not None:
            await client.aclose()

    async def close(self) -> None:
        """Close every pool."""
        for sink_id in list(self._clients):
            await self.forget(sink_id)


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool built here, because httpx offers no way to
    give its own pool the address-checking network backend."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        super().__init__()
        self._pool = pool
