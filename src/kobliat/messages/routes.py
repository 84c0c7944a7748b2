"""HTTP edge of the message context."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response, status

from kobliat.bootstrap import Container
from kobliat.conversations import service as conversations
from kobliat.db.uow import UnitOfWork
from kobliat.errors import InvalidInput
from kobliat.http import Cursor, Limit, Page, container
from kobliat.messages import service
from kobliat.messages.model import Message
from kobliat.messages.schemas import MessageCreate, MessageOut
from kobliat.problems import documented
from kobliat.sending import service as sending

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"])
App = Annotated[Container, Depends(container)]


@router.get("", response_model=Page[MessageOut], responses=documented(400, 404))
def list_messages(
    conversation_id: UUID,
    app: App,
    order: Annotated[Literal["desc", "asc"], Query(description="desc: newest first")] = "desc",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    """A conversation's history in provider-time order, page by page."""
    with app.db.reading() as conn:
        conversations.get(conn, conversation_id)
        items, next_cursor = service.list_page(
            conn, conversation_id, cursor=cursor, limit=limit, newest_first=order == "desc"
        )
    return Page(data=[MessageOut.of(m) for m in items], next_cursor=next_cursor)


@router.post(
    "",
    response_model=MessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": MessageOut, "description": "a replay of the same Idempotency-Key"},
        **documented(404, 409, 422),
    },
)
def post_message(
    conversation_id: UUID,
    body: MessageCreate,
    app: App,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> MessageOut:
    """Send an outbound message (`message.outbound.created`); `Idempotency-Key` is honoured.

    On a channel whose sending is configured the message is queued and delivered to the
    provider; what the channel cannot deliver is a 422, free-form WhatsApp text outside the
    24-hour customer service window a 409.
    """
    if body.body is None and not body.metadata:
        raise InvalidInput("a message needs a body or metadata", code="empty-message")

    def post(uow: UnitOfWork) -> tuple[Message, bool]:
        # Replies to one conversation are stamped and queued one at a time, so the order they
        # are listed in is the order they are sent in.
        conversations.lock(uow, conversation_id)
        message, created = service.send_outbound(
            uow,
            conversation_id,
            content_type=body.content_type,
            body=body.body,
            metadata=body.metadata,
            sender_customer_id=body.sender_customer_id,
            external_message_id=body.external_message_id,
            idempotency_key=idempotency_key,
        )
        # Queued in the same transaction: a refusal (422/409) stores nothing at all.
        if created:
            sending.queue_reply(uow, message, app.settings)
        return message, created

    message, created = app.db.run(post)
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return MessageOut.of(message)
