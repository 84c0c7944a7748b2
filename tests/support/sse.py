"""A minimal SSE client over httpx, for reading /events/stream in tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    """One server-sent event."""

    id: str
    data: dict[str, Any]


def read_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Parse `id:`/`data:` fields into events (comments and pings are skipped)."""
    event_id, data = "", []
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(id=event_id, data=json.loads("\n".join(data)))
            event_id, data = "", []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


@dataclass
class SseCollector:
    """Reads the stream in a thread until `stop_after` events (or forever) have arrived."""

    base_url: str
    api_key: str
    last_event_id: str | None = None
    stop_after: int | None = None
    events: list[SseEvent] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _response: httpx.Response | None = None

    def start(self) -> SseCollector:
        """Connect and collect in the background."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        headers = {"authorization": f"Bearer {self.api_key}"}
        if self.last_event_id:
            headers["last-event-id"] = self.last_event_id
        with (
            httpx.Client(timeout=httpx.Timeout(60, read=None)) as client,
            client.stream("GET", f"{self.base_url}/events/stream", headers=headers) as response,
        ):
            response.raise_for_status()
            self._response = response
            for event in read_sse(_lines_until_closed(response)):
                self.events.append(event)
                if self._stop.is_set() or (
                    self.stop_after is not None and len(self.events) >= self.stop_after
                ):
                    return

    def stop(self) -> None:
        """Stop reading and close the connection."""
        self._stop.set()
        if self._response is not None:
            self._response.close()

    def join(self, timeout: float = 30) -> None:
        """Wait for the reader thread to finish."""
        assert self._thread is not None
        self._thread.join(timeout)


def _lines_until_closed(response: httpx.Response) -> Iterator[str]:
    """The response's lines; ends quietly when `stop()` closed it from another thread."""
    try:
        yield from response.iter_lines()
    except (httpx.HTTPError, RuntimeError):
        return
