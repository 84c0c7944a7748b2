"""How `kobliat serve` runs uvicorn: connection limits and timeouts from the settings.

uvicorn bounds idle keep-alive connections but not a request that is slow to arrive: a client
sending its headers a byte at a time would hold a connection for ever. `GuardedHttpProtocol`
gives the request line and headers a deadline and a size limit; `asgi.LimitBodies` does the
same for bodies.
"""

from __future__ import annotations

import asyncio
import functools
import gc
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kobliat import logs
from kobliat.settings import Settings

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 33\r\nconnection: close\r\n\r\nthe request headers came too late"
)


class HeadTooLarge(httptools.HttpParserError):
    """The request line and headers passed their size limit (uvicorn answers 400, closes)."""


class OneSendTransport:
    """A transport whose writes made in one turn of the event loop leave in one send.

    uvicorn writes an answer's head and its body separately, and each write of an idle socket
    is a system call and a TCP segment of its own (which the client then reads on its own): for
    the small answers webhooks get, that doubles the cost of sending. Here the writes are
    joined and sent when the event loop next turns, before it waits for anything else.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue `data`; the first write of a turn schedules the send."""
        if not self._pending:
            self._loop.call_soon(self._send)
        self._pending.append(data)

    def _send(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what is queued, then close."""
        self._send()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head."""

    def __init__(self, *args: Any, head_timeout: float, max_head_bytes: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout
        self._max_head_bytes = max_head_bytes
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request line must arrive in time too."""
        super().connection_made(cast(asyncio.Transport, OneSendTransport(transport, self.loop)))
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request starts: its headers are due within the deadline."""
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        """Count the request target against the size limit."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header against the size limit."""
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head arrived in time; the body has its own deadline (`asgi.LimitBodies`)."""
        self._disarm()
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._max_head_bytes:
            raise HeadTooLarge(f"request headers over {self._max_head_bytes} bytes")

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()


def settle_heap() -> None:
    """Before serving: collect, then move everything alive (modules, the app, the settings)
    out of the garbage collector's sight. Its full collections then scan only what requests
    allocate, not the whole program, so they stop requests for less time."""
    gc.collect()
    gc.freeze()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` from the settings."""
    protocol = functools.partial(
        GuardedHttpProtocol,
        head_timeout=settings.http_header_timeout_seconds,
        max_head_bytes=settings.http_max_header_bytes,
    )
    return {
        "http": protocol,
        "limit_concurrency": settings.http_limit_concurrency,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        "access_log": False,  # written by `asgi.Observe`, with secrets redacted
        "log_level": settings.log_level.lower(),
        "log_config": logs.uvicorn_log_config(),
    }
