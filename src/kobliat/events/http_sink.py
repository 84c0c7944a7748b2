"""HTTP subscriptions: each event POSTed as CloudEvents JSON, signed the Standard Webhooks way."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

import httpx

from kobliat.events import signing
from kobliat.events.delivery import DeliveryFailed, PendingEvent, RetryPolicy, Sink, body_of


class HttpSink:
    """Delivers to HTTP subscriptions; every subscription has its own connection pool, so a
    slow subscriber can only use up its own connections."""

    kind = "http"

    def __init__(self, *, timeout: float, concurrency: int, policy: RetryPolicy) -> None:
        self.policy = policy
        self.claim_limit = concurrency
        self.timeout = timeout
        # A lease must outlast a run of deliveries; runs stop early well before it ends.
        self.lease = timedelta(seconds=max(60.0, 6 * timeout))
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
        """POST one event; a 2xx answer is the acknowledgement."""
        assert sink.url is not None and sink.secret is not None
        body = body_of(event)
        headers = signing.headers(
            sink.secret, msg_id=str(event.event_id), timestamp=int(time.time()), body=body
        )
        headers["content-type"] = "application/json"
        headers["user-agent"] = "kobliat-webhooks/1"
        try:
            response = await self._client(sink.id).post(sink.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")

    def _client(self, sink_id: UUID) -> httpx.AsyncClient:
        client = self._clients.get(sink_id)
        if client is None:
            size = 2 * self.claim_limit  # two claim loops per sink, each up to claim_limit
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, pool=None),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
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
