"""create_app(settings): the FastAPI application with routers, auth and problem+json errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from kobliat import bootstrap, problem_catalog, problems, tracing
from kobliat.asgi import BodyLimits, LimitBodies, Observe, RequestId
from kobliat.auth import RequireKeyFirst, require_api_key
from kobliat.bootstrap import Container
from kobliat.conversations.routes import router as conversations_router
from kobliat.customers.routes import router as customers_router
from kobliat.events import health, nats_sink
from kobliat.events.contract_routes import router as contract_router
from kobliat.events.routes import router as events_router
from kobliat.events.subscription_routes import router as subscriptions_router
from kobliat.inbox import group_commit
from kobliat.inbox import worker as inbox_worker
from kobliat.messages.routes import router as messages_router
from kobliat.settings import Settings
from kobliat.webhooks.lane import WebhookLane
from kobliat.webhooks.routes import router as webhooks_router


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    """The application. Pass a built `container` to share one (tests); otherwise it is built
    (and migrated) when the app starts."""
    configured = container.settings if container is not None else settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.kobliat = container or bootstrap.build(configured)
        try:
            async with (
                inbox_worker.running(app.state.kobliat.db, app.state.kobliat.settings),
                group_commit.running(app.state.kobliat.ingest_writer),
                _relay(app),
                _sender(app),
            ):
                yield
        finally:
            if owned:
                app.state.kobliat.close()

    # Swagger UI is served from assets packaged with kobliat, so /docs works offline. (ReDoc is
    # left out: its page fetches a logo from its vendor's CDN.)
    app = FastAPIOffline(
        redoc_url=None,
        title="kobliat",
        version="0.1.0",
        description="Customers, conversations and messages from chat webhooks; domain events out.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    if container is not None:
        app.state.kobliat = container
    problems.install(app)
    authed = [Depends(require_api_key)]
    routers = (
        customers_router,
        conversations_router,
        messages_router,
        events_router,
        subscriptions_router,
    )
    for router in routers:
        app.include_router(router, dependencies=authed)
    app.include_router(webhooks_router)  # no API key: each channel's own signature
    app.include_router(contract_router)  # public, like /docs
    health_routes(app)
    _problem_pages(app)
    protected = frozenset(
        str(getattr(route, "path", "/")).split("/", 2)[1]
        for router in routers
        for route in router.routes
    )
    limits = BodyLimits(
        webhooks=configured.webhook_max_body_bytes,
        api=configured.api_max_body_bytes,
        seconds=configured.http_body_timeout_seconds,
    )
    # Added innermost first: a request meets Observe, then LimitBodies, then the webhooks'
    # lane (provider POSTs leave for their handler there), then RequireKeyFirst.
    app.add_middleware(RequireKeyFirst, protected=protected)
    app.add_middleware(WebhookLane)
    app.add_middleware(LimitBodies, limits=limits)
    app.add_middleware(Observe)
    app.add_middleware(RequestId)  # around Observe: the access log line carries the id
    tracing.configure()
    app.add_middleware(tracing.TraceContextMiddleware)  # outermost: the whole request traced
    return app


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operationId: its handler's name in camelCase (`listConversations`)."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


@asynccontextmanager
async def _relay(app: FastAPI) -> AsyncIterator[None]:
    """Run the outbox relay in this process while the app runs (unless KOBLIAT_RELAY_ENABLED
    is false, e.g. when `kobliat relay` runs elsewhere)."""
    kobliat: Container = app.state.kobliat
    app.state.relay = None
    if not kobliat.settings.relay_enabled:
        yield
        return
    relay = bootstrap.build_relay(kobliat)
    task = asyncio.create_task(relay.run())
    app.state.relay = relay
    try:
        yield
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=30)
        app.state.relay = None


@asynccontextmanager
async def _sender(app: FastAPI) -> AsyncIterator[None]:
    """Send queued replies from this process while the app runs (unless
    KOBLIAT_SENDER_ENABLED is false, or no channel's sending is configured)."""
    kobliat: Container = app.state.kobliat
    sender = bootstrap.build_sender(kobliat) if kobliat.settings.sender_enabled else None
    app.state.sender = sender
    if sender is None:
        yield
        return
    task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        sender.stop()
        await asyncio.wait_for(task, timeout=kobliat.settings.send_timeout_seconds + 30)
        app.state.sender = None


READY_EXAMPLE = {
    "status": "ready",
    "database": "ok",
    "relay": {
        "running_here": True,
        "ready": True,
        "loops_stopped_here": [],
        "lag_seconds": 0.012,
        "undispatched": 0,
        "sinks": [
            {
                "sink": "nats",
                "kind": "nats",
                "pending_aggregates": 0,
                "dead_letters": 0,
                "lag_seconds": 0.0,
                "state_here": "connected",
                "loops_running_here": 4,
            }
        ],
    },
    "nats": {
        "state": "connected",
        "server": "127.0.0.1:4222",
        "stream": "KOBLIAT",
        "replicas": 3,
        "replicas_wanted": 3,
        "duplicate_window_seconds": 86400.0,
        "problem": None,
    },
}


def _example(answer: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": answer}}}}


def health_routes(app: FastAPI) -> None:
    """/healthz, /readyz and /metrics, reading `app.state.kobliat` and `app.state.relay`."""

    @app.get("/healthz", tags=["health"], name="get_health", responses=_example({"status": "ok"}))
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        name="get_readiness",
        responses={**_example(READY_EXAMPLE), **problems.documented(503)},
    )
    def readyz(request: Request) -> dict[str, object]:
        """The database answers and this process's relay loops run; a 503 problem when not."""
        kobliat: Container = request.app.state.kobliat
        # Both refusals pass (the database comes back, the relay restarts its loops): a
        # probe or a load balancer is told when to ask again, as every 503 here tells it.
        retry = {"Retry-After": str(problems.RETRY_AFTER_SECONDS)}
        try:
            with kobliat.db.reading() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise problems.Problem(
                503, "database-unavailable", f"database: {type(exc).__name__}", headers=retry
            ) from exc
        # Relay lag does not make the API unready: events wait in the outbox meanwhile.
        running = getattr(request.app.state, "relay", None)
        relay = health.snapshot(kobliat.db, relay=running)
        if not relay["ready"]:
            stopped = ", ".join(relay["loops_stopped_here"])
            raise problems.Problem(
                503,
                "relay-not-running",
                f"relay loops stopped: {stopped}",
                headers=retry,
                relay=relay,
            )
        nats = nats_sink.report_of(running.transports) if running is not None else None
        return {"status": "ready", "database": "ok", "relay": relay, "nats": nats}

    @app.get("/metrics", tags=["health"], name="get_metrics", response_class=PlainTextResponse)
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus text format."""
        kobliat: Container = request.app.state.kobliat
        with contextlib.suppress(Exception):  # the gauges keep their last values
            health.snapshot(kobliat.db, relay=getattr(request.app.state, "relay", None))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _problem_pages(app: FastAPI) -> None:
    """The pages problem `type` URIs point to (`/problems/{code}`), and their index."""

    @app.get("/problems", response_class=HTMLResponse, include_in_schema=False)
    def problem_index() -> str:
        return problem_catalog.index()

    @app.get("/problems/{code}", response_class=HTMLResponse, include_in_schema=False)
    def problem_page(code: str) -> str:
        found = problem_catalog.page(code)
        if found is None:
            raise problems.Problem(404, "not-found", f"no problem is called {code!r}")
        return found
