"""Signed WhatsApp webhooks sent to one or more kobliat processes from a background thread,
with retries of a delivery sent again to another process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from kobliat.channels.samples import signing, whatsapp_messages

WHATSAPP_SECRET = "wa-app-secret-for-scale-tests"
START = 1767261845


def webhook(n: int, *, senders: int) -> bytes:
    """The n-th text message; sender n % senders, one second after the sender's previous one."""
    sender = n % senders
    return whatsapp_messages.text(
        wa_id=f"4477009{sender:05d}",
        name=f"Sender {sender}",
        message_id=f"wamid.scale-{n:07d}",
        timestamp=START + n,
        body=f"message {n}",
    )


class WebhookLoad:
    """Posts `total` webhooks round-robin over `bases`; every `retry_every`-th one is sent again
    to the next process (a provider's retry). Counts answers by status."""

    def __init__(
        self, bases: list[str], *, total: int, senders: int = 20, retry_every: int = 5
    ) -> None:
        self.bases = bases
        self.total = total
        self.senders = senders
        self.retry_every = retry_every
        self.statuses: Counter[int] = Counter()
        self.sent = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        clients = [httpx.Client(base_url=b, timeout=30) for b in self.bases]
        try:
            for n in range(self.total):
                body = webhook(n, senders=self.senders)
                self._post(clients[n % len(clients)], body)
                if n % self.retry_every == 0:
                    self._post(clients[(n + 1) % len(clients)], body)
                self.sent = n + 1
        finally:
            for client in clients:
                client.close()

    def _post(self, client: httpx.Client, body: bytes) -> None:
        headers = signing.whatsapp_headers(body, WHATSAPP_SECRET)
        for _ in range(20):  # a process being killed or restarted: the provider retries
            try:
                answer = client.post("/webhooks/whatsapp", content=body, headers=headers)
            except httpx.TransportError as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.2)
                continue
            self.statuses[answer.status_code] += 1
            return

    @contextmanager
    def running(self) -> Iterator[WebhookLoad]:
        """Send in the background for the block; waits for the last webhook on leaving."""
        self._thread.start()
        try:
            yield self
        finally:
            self._thread.join(timeout=300)
