"""Run a real relay, another long-running loop (the inbox worker) or the whole app under uvicorn
in a background thread for a test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import uvicorn
from fastapi import FastAPI

from kobliat import bootstrap
from kobliat.bootstrap import Container
from kobliat.events.relay import Relay
from tests.support.postgres import free_port


class Runs(Protocol):
    """A long-running loop: `run()` until `stop()` (the relay, the inbox worker)."""

    async def run(self) -> None: ...
    def stop(self) -> None: ...


@contextmanager
def in_a_thread(runner: Runs, *, what: str) -> Iterator[None]:
    """Run `runner.run()` in a thread and event loop of its own for the duration of the block;
    then stop it and wait (at most 30 s) for it to end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.run(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(runner.stop)
        thread.join(timeout=30)
        if thread.is_alive():
            raise AssertionError(f"{what} did not stop within 30 s of stop()")
        loop.close()


@contextmanager
def running_relay(container: Container) -> Iterator[Relay]:
    """A relay built from the container's settings, in its own thread and event loop."""
    relay = bootstrap.build_relay(container)
    with in_a_thread(relay, what="the relay"):
        yield relay


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
