"""Plain ASGI middleware at the edge: request bodies capped while they stream in, and every
request measured and logged once (no `BaseHTTPMiddleware`: it costs a task per request)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kobliat import logs, metrics, problems

access_log = structlog.get_logger("kobliat.access")


class BodyTooLarge(HTTPException):
    """The request body passed its limit while streaming in (a 413 problem)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies here are limited to {limit} bytes")


class BodyTooSlow(HTTPException):
    """The request body did not arrive in time (a 408 problem)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How much body a request may carry and how long it may take to send it."""

    webhooks: int
    api: int
    seconds: float

    def for_path(self, path: str) -> int:
        """The limit for a request path (webhooks carry provider payloads, the rest less)."""
        return self.webhooks if path.startswith("/webhooks/") else self.api


class LimitBodies:
    """Refuse a body declared too large before reading it, and stop reading one that grows
    past the limit (chunked): at most the limit is ever held in memory. When the answer goes
    out before the body was read whole, the connection is closed rather than drained."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared, chunked = _declared_length(scope)
        if declared is not None and declared > limit:
            await problems.send_problem(
                send, 413, "payload-too-large", str(BodyTooLarge(limit).detail), close=True
            )
            return
        body = _Body(receive, limit, self.limits.seconds, expected=chunked or bool(declared))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                body.answered = True
                if not body.complete:
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, body.receive, sending)
        except (BodyTooLarge, BodyTooSlow) as exc:  # raised where nothing turned it into an answer
            if body.answered:
                raise
            await problems.send_problem(sending, exc.status_code, _code(exc), str(exc.detail))


def _code(exc: HTTPException) -> str:
    return "payload-too-large" if exc.status_code == 413 else "request-timeout"


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            declared = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


class _Body:
    """The request's `receive`, counting body bytes and bounding the time they take."""

    def __init__(self, receive: Receive, limit: int, seconds: float, *, expected: bool) -> None:
        self._receive = receive
        self._limit = limit
        self._seconds = seconds
        self._deadline: float | None = None
        self._seen = 0
        self.complete = not expected
        self.answered = False

    async def receive(self) -> Message:
        if self.complete:  # after the body: waiting for a disconnect (streams), unbounded
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self._seconds
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise BodyTooSlow(self._seconds) from None
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                raise BodyTooLarge(self._limit)
            self.complete = not message.get("more_body", False)
        return message


class Observe:
    """Count and time every request by route template, and write one access-log line with
    secrets in the query string redacted and personal data masked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
            _log_access(scope, status, elapsed)


def _log_access(scope: Scope, status: int, elapsed: float) -> None:
    target = scope["path"]
    if query := scope.get("query_string"):
        target += "?" + logs.redact_query(query)
    client = scope.get("client")
    access_log.info(
        f"{scope['method']} {target} {status}",
        ms=round(elapsed * 1000, 1),
        client=f"{client[0]}:{client[1]}" if client else None,
    )


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestId:
    """Give every request an id (the caller's `X-Request-ID` when it is a sane token), bound to
    every log line of the work the request causes and echoed in the answer's `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        text = given.decode("latin-1")
        request_id = text if _REQUEST_ID.fullmatch(text) else uuid.uuid4().hex

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, sending)
