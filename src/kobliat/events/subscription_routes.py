"""HTTP edge of event subscriptions."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response, status

from kobliat.bootstrap import Container
from kobliat.events import subscriptions
from kobliat.events.schemas import (
    ReplayIn,
    ReplayOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
)
from kobliat.http import Cursor, Limit, Page, container
from kobliat.problems import documented

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
App = Annotated[Container, Depends(container)]


@router.post("", response_model=SubscriptionCreated, status_code=status.HTTP_201_CREATED)
def create_subscription(body: SubscriptionCreate, app: App) -> SubscriptionCreated:
    """Subscribe a URL to events from now on. The answer shows the signing secret, once."""
    sink = app.db.run(
        lambda uow: subscriptions.create(
            uow,
            url=str(body.url),
            event_types=body.event_types,
            secret=body.secret,
            allow_private=app.settings.subscriptions_allow_private,
        )
    )
    assert sink.secret is not None
    return SubscriptionCreated(**SubscriptionOut.of(sink).model_dump(), secret=sink.secret)


@router.get("", response_model=Page[SubscriptionOut], responses=documented(400))
def list_subscriptions(app: App, limit: Limit = 50, cursor: Cursor = None) -> Page[SubscriptionOut]:
    """Subscriptions in creation order, with what each still has to receive."""
    with app.db.reading() as conn:
        items, next_cursor = subscriptions.list_page(conn, cursor=cursor, limit=limit)
        backlogs = subscriptions.backlogs(conn)
    return Page(
        data=[SubscriptionOut.of(s, backlogs.get(s.id)) for s in items], next_cursor=next_cursor
    )


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses=documented(404))
def get_subscription(subscription_id: UUID, app: App) -> SubscriptionOut:
    """One subscription (without its secret)."""
    with app.db.reading() as conn:
        sink = subscriptions.get(conn, subscription_id)
        backlog = subscriptions.backlogs(conn).get(sink.id)
    return SubscriptionOut.of(sink, backlog)


@router.delete(
    "/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, responses=documented(404)
)
def delete_subscription(subscription_id: UUID, app: App) -> Response:
    """Unsubscribe; events not yet delivered to it are dropped."""
    app.db.run(lambda uow: subscriptions.delete(uow, subscription_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{subscription_id}/replay",
    response_model=ReplayOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=documented(404),
)
def replay_subscription(
    subscription_id: UUID, app: App, body: Annotated[ReplayIn | None, Body()] = None
) -> ReplayOut:
    """Deliver dead-lettered events again (in order); with `since`, also every event the
    outbox still holds from that time on."""
    since = body.since if body else None
    count = app.db.run(lambda uow: subscriptions.replay(uow, subscription_id, since=since))
    return ReplayOut(aggregates=count)
