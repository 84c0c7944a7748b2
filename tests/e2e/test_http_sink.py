"""HTTP deliveries against real local subscribers that misbehave: a trickled answer, an endless
answer, an internal address. And the structured CloudEvents content type."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from kobliat.events.delivery import DeliveryFailed, PendingEvent, RetryPolicy, Sink
from kobliat.events.http_sink import HttpSink
from kobliat.events.signing import new_secret
from tests.support.receiver import running_receiver

POLICY = RetryPolicy(base_seconds=1, max_seconds=1, max_attempts=1)


@dataclass
class RawServer:
    """A subscriber written at the socket level, to answer the way no framework would."""

    url: str = ""
    requests: int = 0
    bytes_sent: int = 0
    finished: bool = False  # it wrote its whole answer without the client leaving
    gone: threading.Event = field(default_factory=threading.Event)  # the client hung up


@contextmanager
def raw_server(answer: str) -> Iterator[RawServer]:
    """`answer`: "trickle" (a 200 whose 100-byte body comes one byte every 0.3 s) or "endless"
    (a chunked 200 whose body never ends)."""
    state = RawServer()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            _read_request(conn)
            state.requests += 1
            try:
                if answer == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                    for _ in range(100):
                        conn.sendall(b"x")
                        state.bytes_sent += 1
                        time.sleep(0.3)
                    state.finished = True
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                chunk = b"x" * 16384
                while state.bytes_sent < 512 * 1024 * 1024:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    state.bytes_sent += len(chunk)
                state.finished = True
            except OSError:
                state.gone.set()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


def _sink(url: str) -> Sink:
    return Sink(uuid4(), "http", url, None, new_secret(), datetime.now(UTC))


def _event() -> PendingEvent:
    event_id = uuid4()
    envelope: dict[str, Any] = {"specversion": "1.0", "id": str(event_id), "type": "x.y"}
    return PendingEvent(event_id, "x.y", 1, envelope, datetime.now(UTC))


def _deliver(url: str, *, allow_private: bool = True, timeout: float = 1.0) -> None:
    async def deliver() -> None:
        sink = HttpSink(timeout=timeout, concurrency=2, policy=POLICY, allow_private=allow_private)
        try:
            await sink.deliver(_sink(url), _event())
        finally:
            await sink.close()

    asyncio.run(asyncio.wait_for(deliver(), 120))


def test_a_trickled_answer_ends_the_delivery_at_its_timeout() -> None:
    with raw_server("trickle") as server:
        with pytest.raises(DeliveryFailed, match="no answer within 1s"):
            _deliver(server.url, timeout=1.0)
        assert server.gone.wait(30), "the subscriber was still being listened to"
        assert not server.finished


def test_an_endless_answer_is_read_only_up_to_the_cap_and_its_status_counts() -> None:
    with raw_server("endless") as server:
        _deliver(server.url, timeout=30.0)  # a 2xx: acknowledged
        assert server.gone.wait(30), "the answer was read on"
        assert server.bytes_sent < 64 * 1024 * 1024  # what the OS buffers, not the whole body


def test_events_are_posted_as_structured_cloudevents() -> None:
    with running_receiver() as receiver:
        _deliver(receiver.url)
        [delivery] = receiver.accepted()
    assert delivery.headers["content-type"] == "application/cloudevents+json"
    assert delivery.headers["webhook-id"] == delivery.event["id"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0x7f000001"])
def test_an_internal_address_is_refused_when_connecting(host: str) -> None:
    with running_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        with pytest.raises(DeliveryFailed, match="loopback"):
            _deliver(f"http://{host}:{port}/hook", allow_private=False)
        assert receiver.attempts == 0
