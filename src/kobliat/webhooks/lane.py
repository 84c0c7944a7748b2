"""The webhooks' lane past FastAPI: a provider's POST goes from the edge middleware straight to
its channel's handler.

Webhooks are the bulk of the traffic and need none of what FastAPI adds per request (routing
over every REST route, dependency solving, response validation, its exception middleware): they
read raw bytes, check a signature and answer a small JSON. Everything else about the request is
as on any route: the edge middleware around this one (tracing, request id, access log and
metrics, body limits) sees it, the route template labels its metrics, and errors become the same
problem+json answers through the app's own exception handlers. The routes stay registered in the
app, so the OpenAPI schema documents them and a path this lane does not take (a trailing slash,
another method) gets FastAPI's answer.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from kobliat.webhooks.headers import refuse_repeated_headers
from kobliat.webhooks.routes import HANDLERS


class WebhookLane:
    """Plain ASGI: `POST /webhooks/{channel}` to the channel's handler, the rest to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, BaseRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        handler = None
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = HANDLERS.get(scope["path"])
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route(scope)
        request = Request(scope, receive, send)
        try:
            await refuse_repeated_headers(request)
            response = await handler(request)
        except Exception as exc:
            answer = _handler_for(scope["app"], exc)
            if answer is None:
                raise  # the server error middleware answers 500 and logs it, as for any route
            response = await answer(request, exc)
        await response(scope, receive, send)

    def _route(self, scope: Scope) -> BaseRoute | None:
        if self._routes is None:
            self._routes = {
                path: route
                for route in scope["app"].router.routes
                if (path := getattr(route, "path", None)) in HANDLERS
                and "POST" in getattr(route, "methods", ())
            }
        return self._routes.get(scope["path"])


def _handler_for(app: Any, exc: Exception) -> Any:
    """The app's exception handler for `exc` (most specific class first), but not the catch-all
    for `Exception`: an unexpected error goes on to the server error middleware."""
    handlers = app.exception_handlers
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None
