"""Run a real relay (or the whole app under uvicorn) in a background thread for a test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from kobliat import bootstrap
from kobliat.bootstrap import Container
from kobliat.events.relay import Relay
from tests.support.postgres import free_port


@contextmanager
def running_relay(container: Container) -> Iterator[Relay]:
    """A relay built from the container's settings, in its own thread and event loop."""
    relay = bootstrap.build_relay(container)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(relay.run(),), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        loop.call_soon_threadsafe(relay.stop)
        thread.join(timeout=30)
        if thread.is_alive():
            raise AssertionError("the relay did not stop within 30 s of stop()")
        loop.close()


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve the app with uvicorn on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(check: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `check` until it is true; fail after `timeout` seconds (a bound, not a speed test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
