"""HTTP edge of the conversation context."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from kobliat import views
from kobliat.bootstrap import Container
from kobliat.conversations import service
from kobliat.conversations.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationListItem,
    ConversationOut,
    ConversationPatch,
    ParticipantDetail,
    ParticipantIn,
)
from kobliat.customers import service as customers
from kobliat.http import NO_NUL, Cursor, Limit, Page, container
from kobliat.messages import service as messages
from kobliat.messages.schemas import MessageOut
from kobliat.problems import documented

router = APIRouter(prefix="/conversations", tags=["conversations"])
App = Annotated[Container, Depends(container)]
LATEST_MESSAGES = 20


@router.get("", response_model=Page[ConversationListItem], responses=documented(400))
def list_conversations(
    app: App,
    status_: Annotated[Literal["open", "closed", "pending"] | None, Query(alias="status")] = None,
    type_: Annotated[Literal["direct", "multi", "group"] | None, Query(alias="type")] = None,
    customer_id: Annotated[UUID | None, Query()] = None,
    channel: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    order: Annotated[
        Literal["activity", "created"],
        Query(
            description="`activity` (default): most recent activity first; a conversation "
            "that gets a message while a client walks the pages moves ahead of the cursor "
            "and is not returned again. `created`: oldest first, by creation, which never "
            "changes: a walk through every page returns each conversation exactly once."
        ),
    ] = "activity",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ConversationListItem]:
    """Conversations page by page, most recent activity first (or by creation), each with its
    participants' names and its last message (one database query per page)."""
    with app.db.reading() as conn:
        items, next_cursor = views.inbox_page(
            conn,
            cursor=cursor,
            limit=limit,
            order=order,
            status=status_,
            type=type_,
            channel=channel,
            customer_id=customer_id,
        )
    return Page(data=[ConversationListItem.of_view(c) for c in items], next_cursor=next_cursor)


@router.post(
    "",
    response_model=ConversationDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ConversationDetail, "description": "the open one with the same key"},
        **documented(409),
    },
)
def create_conversation(
    body: ConversationCreate, app: App, response: Response
) -> ConversationDetail:
    """Open a conversation; the open one with the same key is returned instead (200)."""
    conversation, opened = app.db.run(
        lambda uow: service.open_conversation(
            uow,
            type=body.type,
            channel=body.channel,
            participants=[(p.customer_id, p.role) for p in body.participants],
            external_id=body.external_id,
            group_name=body.group_name,
            group_avatar=body.group_avatar,
            group_metadata=body.group_metadata,
        )
    )
    if not opened:
        response.status_code = status.HTTP_200_OK
    return _detail(app, conversation.id)


@router.get("/{conversation_id}", response_model=ConversationDetail, responses=documented(404))
def get_conversation(conversation_id: UUID, app: App) -> ConversationDetail:
    """The conversation, its participants with their customers, and its latest messages."""
    return _detail(app, conversation_id)


@router.patch(
    "/{conversation_id}", response_model=ConversationDetail, responses=documented(404, 409)
)
def patch_conversation(
    conversation_id: UUID, body: ConversationPatch, app: App
) -> ConversationDetail:
    """Change status (open ⇄ pending, → closed, closed → open) and group details."""
    app.db.run(
        lambda uow: service.update(
            uow,
            conversation_id,
            status=body.status,
            group_name=body.group_name,
            group_avatar=body.group_avatar,
            group_metadata=body.group_metadata,
        )
    )
    return _detail(app, conversation_id)


@router.post(
    "/{conversation_id}/participants",
    response_model=ParticipantDetail,
    status_code=status.HTTP_201_CREATED,
    responses=documented(404, 409),
)
def add_participant(conversation_id: UUID, body: ParticipantIn, app: App) -> ParticipantDetail:
    """Add a customer (`conversation.participant.added`); a broken rule is a 409."""
    member = app.db.run(
        lambda uow: service.add_participant(uow, conversation_id, body.customer_id, role=body.role)
    )
    with app.db.reading() as conn:
        customer = customers.get(conn, member.customer_id)
    return ParticipantDetail.with_customer(member, customer)


@router.delete(
    "/{conversation_id}/participants/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404, 409),
)
def remove_participant(conversation_id: UUID, customer_id: UUID, app: App) -> Response:
    """Remove a participant (`conversation.participant.removed`); a broken rule is a 409."""
    app.db.run(lambda uow: service.remove_participant(uow, conversation_id, customer_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _detail(app: Container, conversation_id: UUID) -> ConversationDetail:
    with app.db.reading() as conn:
        conversation = service.get(conn, conversation_id)
        known = customers.get_many(conn, [p.customer_id for p in conversation.participants])
        latest, _ = messages.list_page(conn, conversation_id, cursor=None, limit=LATEST_MESSAGES)
    summary = ConversationOut.of(conversation).model_dump(exclude={"participants"})
    return ConversationDetail(
        **summary,
        participants=[
            ParticipantDetail.with_customer(p, known.get(p.customer_id))
            for p in conversation.participants
        ],
        messages=[MessageOut.of(m) for m in latest],
    )
