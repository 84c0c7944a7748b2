"""A real local HTTP server that plays an event subscriber: records what it receives and can be
told to fail or to be slow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    """One request the subscriber received."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        """The CloudEvent in the body."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """What the subscriber got; `answer` decides each response status (default 204)."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0  # requests answered
    arrived: int = 0  # requests received (answered or still being delayed)
    answer: Callable[[Delivery], int] = lambda _d: 204
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Delivery]:
        """Deliveries answered with a 2xx, in arrival order."""
        with self.lock:
            return list(self.deliveries)

    def accepted_ids(self) -> set[str]:
        """Distinct event ids accepted."""
        return {d.event["id"] for d in self.accepted()}


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """Serve a Receiver on a free 127.0.0.1 port for the duration of the block."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: nothing was delivered
                self.close_connection = True
                return
            delivery = Delivery(headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            with state.lock:  # the answer is decided on arrival, then given after the delay
                state.arrived += 1
                status = state.answer(delivery)
                delay = state.delay
            if delay:
                time.sleep(delay)
            with state.lock:
                state.attempts += 1
                if 200 <= status < 300:
                    state.deliveries.append(delivery)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
