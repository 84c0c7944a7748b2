"""The pull feed of events (CloudEvents, oldest first) and its live SSE stream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from kobliat.bootstrap import Container
from kobliat.events import outbox
from kobliat.events.schemas import EventOut
from kobliat.http import Page, container
from kobliat.jsonlimits import readable
from kobliat.problems import Problem, documented

router = APIRouter(prefix="/events", tags=["events"])
App = Annotated[Container, Depends(container)]
After = Annotated[
    str | None,
    Query(description="next_cursor of the previous page, or the id of the last event seen"),
]
STREAM_PAGE = 500


def _position(app: Container, after: str | None) -> str | None:
    """A feed cursor from `after`, which may also be an event id (while the outbox has it)."""
    if after is None:
        return None
    try:
        event_id = UUID(after)
    except ValueError:
        return after
    with app.db.reading() as conn:
        cursor = outbox.cursor_after_event(conn, event_id)
    if cursor is None:
        raise Problem(400, "unknown-event", f"event {after} is not (or no longer) in the feed")
    return cursor


def _read(app: Container, after: str | None, limit: int) -> outbox.FeedPage:
    with app.db.reading() as conn:
        page = outbox.read_feed(conn, after=after, limit=limit)
    # One event that cannot be serialised must not stop every consumer of the feed.
    events = [_readable(envelope) for envelope in page.events]
    return dataclasses.replace(page, events=events)


def _readable(envelope: dict[str, Any]) -> dict[str, Any]:
    what = f"event {envelope.get('id')}"
    data = readable(envelope.get("data"), what=what)
    return envelope if data is envelope.get("data") else {**envelope, "data": data}


@router.get(
    "",
    response_model=Page[EventOut],
    response_model_exclude_unset=True,  # envelopes as written: no null traceparent
    responses=documented(400),
)
def list_events(
    app: App,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
) -> Page[dict[str, Any]]:
    """Events in commit order after `after`. The answer's next_cursor is where to read on
    from; it stays the same while nothing new has committed, so it can be polled."""
    feed = _read(app, _position(app, after), limit)
    return Page(data=feed.events, next_cursor=feed.next_cursor)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-sent events: `id` is a feed cursor, `data` a CloudEvent",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **documented(400),
    },
)
async def stream_events(
    app: App,
    after: After = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-sent events: every event from the position on, then new ones as they commit.
    Each SSE `id` is a feed cursor, so a reconnect with `Last-Event-ID` resumes exactly."""
    start = await run_in_threadpool(_position, app, last_event_id or after)
    # Read the first page before answering, so a bad cursor is a 400, not a broken stream.
    first = await run_in_threadpool(_read, app, start, STREAM_PAGE)
    poll = app.settings.relay_poll_seconds
    return EventSourceResponse(_follow(app, first, poll=poll), ping=15)


async def _follow(
    app: Container, page: outbox.FeedPage, *, poll: float
) -> AsyncIterator[dict[str, str]]:
    while True:
        for envelope, cursor in zip(page.events, page.cursors, strict=True):
            yield {"id": cursor, "data": json.dumps(envelope, separators=(",", ":"))}
        if len(page.events) < STREAM_PAGE:
            await asyncio.sleep(poll)
        page = await run_in_threadpool(_read, app, page.next_cursor, STREAM_PAGE)
