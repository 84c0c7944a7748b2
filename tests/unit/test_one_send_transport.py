"""Writes made in one turn of the event loop leave in one send, in order, and close sends first."""

from __future__ import annotations

import asyncio
from typing import Any

from kobliat.server import OneSendTransport


class Recorded(asyncio.Transport):
    """A transport that keeps what it is asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 9)}.get(name, default)


def test_writes_of_one_turn_leave_together_and_in_order() -> None:
    async def scenario() -> list[bytes]:
        inner = Recorded()
        transport = OneSendTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert inner.sent == []  # not yet: the loop has not turned
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner.sent

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"next"]


def test_close_sends_what_is_queued_first_and_the_rest_is_passed_through() -> None:
    async def scenario() -> tuple[list[bytes], bool, Any]:
        inner = Recorded()
        transport = OneSendTransport(inner, asyncio.get_running_loop())
        transport.write(b"bye")
        transport.close()
        await asyncio.sleep(0)
        return inner.sent, inner.closed, transport.get_extra_info("peername")

    assert asyncio.run(scenario()) == ([b"bye"], True, ("127.0.0.1", 9))
