"""`kobliat relay --port`: the relay process's /healthz, /readyz and /metrics, served next to
the relay (the same endpoints as `kobliat serve`, so one probe configuration fits both)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from kobliat import api, problems, server
from kobliat.bootstrap import Container
from kobliat.events.relay import Relay


class _RelayServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the relay, which stops it when done."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: the relay's own handlers stop it, and then this server."""
        yield


def health_app(container: Container, relay: Relay) -> FastAPI:
    """An app with only the health endpoints, reporting on `relay`."""
    app = FastAPI(title="kobliat relay", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kobliat = container
    app.state.relay = relay
    problems.install(app)
    api.health_routes(app)
    return app


async def _serve(web: uvicorn.Server) -> None:
    # uvicorn exits the process when it cannot bind; end only this task (it has logged why).
    with contextlib.suppress(SystemExit):
        await web.serve()


async def run(container: Container, relay: Relay, *, host: str, port: int | None) -> None:
    """Run the relay until it stops; with a `port`, serve its health endpoints meanwhile."""
    if port is None:
        await relay.run()
        return
    options = server.uvicorn_options(container.settings)
    config = uvicorn.Config(
        health_app(container, relay), host=host, port=port, lifespan="off", **options
    )
    web = _RelayServer(config)
    serving = asyncio.create_task(_serve(web))
    while not web.started:  # the relay starts only once its health can be seen
        if serving.done():
            raise SystemExit(f"kobliat relay: cannot serve health on {host}:{port} (see above)")
        await asyncio.sleep(0.05)
    try:
        await relay.run()
    finally:
        web.should_exit = True
        await serving
