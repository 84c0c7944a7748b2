"""HTTP subscription use cases. They take a unit of work (or a connection) and never commit."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import Connection

from kobliat import pagination
from kobliat.db import dialect
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.errors import InvalidInput, NotFound
from kobliat.events import destinations, maintenance_store, signing, sinks_store
from kobliat.events.delivery import Sink

KIND = "http"


def create(
    uow: UnitOfWork,
    *,
    url: str,
    event_types: list[str] | None,
    secret: str | None,
    allow_private: bool = False,
) -> Sink:
    """Subscribe `url` to events (all, or those `event_types` match) from now on; the secret
    is generated when not given. Internal destinations are refused unless `allow_private`."""
    refused = None if allow_private else destinations.url_refusal(url)
    if refused is not None:
        raise InvalidInput(
            f"subscription URL refused: {refused}; only public addresses are allowed "
            "(KOBLIAT_SUBSCRIPTIONS_ALLOW_PRIVATE=true allows others, for development)",
            code="subscription-destination-not-allowed",
        )
    sink = Sink(
        id=uuid4(),
        kind=KIND,
        url=url,
        event_types=tuple(event_types) if event_types else None,
        secret=secret or signing.new_secret(),
        created_at=utcnow(),
    )
    sinks_store.insert_sink(uow.connection, sink)
    return sink


def get(conn: Connection, subscription_id: UUID) -> Sink:
    """The subscription, or NotFound."""
    found = sinks_store.get_sink(conn, subscription_id, kind=KIND)
    if found is None:
        raise NotFound(f"no subscription {subscription_id}", code="subscription-not-found")
    return found


def list_page(conn: Connection, *, cursor: str | None, limit: int) -> tuple[list[Sink], str | None]:
    """Subscriptions in creation order, page by page."""
    after = pagination.decode("subscriptions", cursor, datetime, UUID) if cursor else None
    items = sinks_store.page_of_sinks(
        conn, kind=KIND, after=(after[0], after[1]) if after else None, limit=limit + 1
    )
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = pagination.encode("subscriptions", items[-1].created_at, items[-1].id)
    return items, next_cursor


def delete(uow: UnitOfWork, subscription_id: UUID) -> None:
    """Unsubscribe; undelivered events for it are dropped."""
    if not sinks_store.delete_sink(uow.connection, subscription_id, kind=KIND):
        raise NotFound(f"no subscription {subscription_id}", code="subscription-not-found")


def replay(uow: UnitOfWork, subscription_id: UUID, *, since: datetime | None) -> int:
    """Retry dead-lettered events now; with `since`, also deliver again every event still
    kept in the outbox from that time on. Returns the number of aggregates affected."""
    get(uow.connection, subscription_id)
    # The database's clock, like every other lease and retry time of the relay.
    now = dialect.database_now(uow.connection)
    return maintenance_store.replay(uow.connection, subscription_id, since=since, now=now)


def backlogs(conn: Connection) -> dict[UUID, maintenance_store.Backlog]:
    """What each sink still has to deliver."""
    return maintenance_store.backlog(conn)[2]
