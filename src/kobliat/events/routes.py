"""The pull feed of events (CloudEvents, oldest first)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from kobliat.bootstrap import Container
from kobliat.events import outbox
from kobliat.http import Page, container
from kobliat.problems import documented

router = APIRouter(prefix="/events", tags=["events"])
App = Annotated[Container, Depends(container)]


@router.get("", response_model=Page[dict[str, Any]], responses=documented(400))
def list_events(
    app: App,
    after: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[dict[str, Any]]:
    """Events in commit order after `after`. The answer's next_cursor is where to read on
    from; it stays the same while nothing new has committed, so it can be polled."""
    with app.db.reading() as conn:
        feed = outbox.read_feed(conn, after=after, limit=limit)
    return Page(data=feed.events, next_cursor=feed.next_cursor)
