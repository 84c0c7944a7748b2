"""Read-side views that show several contexts at once, in one SQL statement per page.

Writes go through each context's service; a screen that shows conversations with their
participants' names and their last message would otherwise ask three services per row. Here
plain SQLAlchemy Core reads the tables of all three contexts together, and returns read models
(frozen dataclasses) that no use case ever writes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Row,
    Select,
    Uuid,
    func,
    literal,
    select,
    true,
    tuple_,
)

from kobliat import pagination
from kobliat.db import dialect
from kobliat.db.tables import conversation_participants, conversations, customers, messages
from kobliat.db.types import UTCDateTime

# How much of the last message's body an inbox row shows.
PREVIEW_CHARS = 120

c = conversations.c
m = messages.c


@dataclass(frozen=True, slots=True)
class InboxParticipant:
    """A membership with its customer's display name and channel identity."""

    customer_id: UUID
    role: str
    joined_at: datetime
    metadata: dict[str, Any]
    name: str | None
    external_type: str | None
    external_id: str | None


@dataclass(frozen=True, slots=True)
class LastMessage:
    """The start of a conversation's latest message (by provider time)."""

    id: UUID
    direction: str
    content_type: str
    body_preview: str | None
    body_truncated: bool
    sender_customer_id: UUID | None
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class InboxConversation:
    """A conversation as an inbox lists it."""

    id: UUID
    type: str
    status: str
    channel: str | None
    external_id: str | None
    group_name: str | None
    group_avatar: str | None
    group_metadata: dict[str, Any]
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    last_message: LastMessage | None
    participants: list[InboxParticipant] = field(default_factory=list)


def inbox_page(
    conn: Connection,
    *,
    cursor: str | None,
    limit: int,
    order: Literal["activity", "created"] = "activity",
    status: str | None = None,
    type: str | None = None,
    channel: str | None = None,
    customer_id: UUID | None = None,
) -> tuple[list[InboxConversation], str | None]:
    """A page of conversations with participants' names and the last message, and the next
    page's cursor; the cursors are those of the plain conversation list."""
    kind = "conversations" if order == "activity" else "conversations-created"
    after = pagination.decode(kind, cursor, datetime, UUID) if cursor else None
    page = _page_of_conversations(
        after,
        limit + 1,
        by_creation=order == "created",
        where=_filters(status=status, type_=type, channel=channel, customer_id=customer_id),
    )
    rows = conn.execute(_with_names_and_last_message(conn, page.subquery("page"), order)).all()
    items = _grouped(rows)
    if order == "created":
        return pagination.page_of(items, limit=limit, kind=kind, key=lambda i: (i.created_at, i.id))
    return pagination.page_of(
        items, limit=limit, kind=kind, key=lambda i: (i.last_activity_at, i.id)
    )


def _filters(
    *, status: str | None, type_: str | None, channel: str | None, customer_id: UUID | None
) -> list[ColumnElement[bool]]:
    """The list's filters as WHERE terms."""
    terms: list[ColumnElement[bool]] = []
    if status is not None:
        terms.append(c.status == status)
    if type_ is not None:
        terms.append(c.type == type_)
    if channel is not None:
        terms.append(c.channel == channel)
    if customer_id is not None:
        p = conversation_participants.c
        terms.append(c.id.in_(select(p.conversation_id).where(p.customer_id == customer_id)))
    return terms


def _page_of_conversations(
    after: tuple[datetime, UUID] | None,
    limit: int,
    *,
    by_creation: bool,
    where: list[ColumnElement[bool]],
) -> Select[Any]:
    """The page's conversation rows in keyset order (the same keys as the plain list)."""
    stmt = select(conversations).where(*where)
    if after is not None:
        # A row-value comparison, not `a < x OR (a = x AND b < y)`: PostgreSQL turns it into an
        # index condition and starts the scan at the cursor; the OR form filters every row
        # before it, so a page's cost would grow with its depth.
        key = tuple_(c.created_at, c.id) if by_creation else tuple_(c.last_activity_at, c.id)
        position = tuple_(literal(after[0], UTCDateTime()), literal(after[1], Uuid()))
        stmt = stmt.where(key > position if by_creation else key < position)
    if by_creation:
        return stmt.order_by(c.created_at, c.id).limit(limit)
    return stmt.order_by(c.last_activity_at.desc(), c.id.desc()).limit(limit)


def _with_names_and_last_message(
    conn: Connection, page: FromClause, order: Literal["activity", "created"]
) -> Select[Any]:
    """One row per (conversation, participant): the page joined to memberships, customers and
    the last message. The LIMIT applies to conversations, inside `page`, so a group with many
    members never shortens the page."""
    p = conversation_participants.alias("p")
    who = customers.alias("who")
    last, last_columns = _last_message(conn, page)
    joined = page.outerjoin(last, true() if last_columns is None else last_columns)
    joined = joined.outerjoin(p, p.c.conversation_id == page.c.id).outerjoin(
        who, who.c.id == p.c.customer_id
    )
    ordering = (
        (page.c.created_at, page.c.id)
        if order == "created"
        else (page.c.last_activity_at.desc(), page.c.id.desc())
    )
    return (
        select(
            page,
            p.c.customer_id.label("p_customer_id"),
            p.c.role.label("p_role"),
            p.c.joined_at.label("p_joined_at"),
            p.c.metadata.label("p_metadata"),
            who.c.name.label("p_name"),
            who.c.external_type.label("p_external_type"),
            who.c.external_id.label("p_external_id"),
            last.c.id.label("m_id"),
            last.c.direction.label("m_direction"),
            last.c.content_type.label("m_content_type"),
            last.c.body_preview.label("m_body_preview"),
            last.c.body_truncated.label("m_body_truncated"),
            last.c.sender_customer_id.label("m_sender_customer_id"),
            last.c.sent_at.label("m_sent_at"),
        )
        .select_from(joined)
        .order_by(*ordering, p.c.joined_at, p.c.id)
    )


def _last_message(
    conn: Connection, page: FromClause
) -> tuple[FromClause, ColumnElement[bool] | None]:
    """The newest message of each page row, read from `messages_conversation_sent_idx` backwards,
    and the join condition (None: join on true).

    Dialect difference, kept here: PostgreSQL joins a LATERAL subquery (one index probe per
    conversation). SQLite has no LATERAL; it joins `messages` on the id that a correlated
    subquery finds through the same index.
    """
    preview = [
        m.id,
        m.direction,
        m.content_type,
        func.substr(m.body, 1, PREVIEW_CHARS).label("body_preview"),
        (func.coalesce(func.length(m.body), 0) > PREVIEW_CHARS).label("body_truncated"),
        m.sender_customer_id,
        m.sent_at,
    ]
    newest_first = (m.sent_at.desc(), m.id.desc())
    if dialect.supports_lateral(conn):
        lateral = (
            select(*preview)
            .where(m.conversation_id == page.c.id)
            .order_by(*newest_first)
            .limit(1)
            .lateral("last_message")
        )
        return lateral, None
    newest_id = (
        select(m.id)
        .where(m.conversation_id == page.c.id)
        .order_by(*newest_first)
        .limit(1)
        .scalar_subquery()
    )
    found = select(*preview).subquery("last_message")
    return found, found.c.id == newest_id


def _grouped(rows: Sequence[Row[Any]]) -> list[InboxConversation]:
    """Fold the (conversation, participant) rows, in page order, into conversations."""
    items: dict[UUID, InboxConversation] = {}
    for row in rows:
        item = items.get(row.id)
        if item is None:
            item = items[row.id] = _conversation(row)
        if row.p_customer_id is not None:
            item.participants.append(
                InboxParticipant(
                    customer_id=row.p_customer_id,
                    role=row.p_role or "member",
                    joined_at=row.p_joined_at,
                    metadata=row.p_metadata or {},
                    name=row.p_name,
                    external_type=row.p_external_type,
                    external_id=row.p_external_id,
                )
            )
    return list(items.values())


def _conversation(row: Any) -> InboxConversation:
    last = None
    if row.m_id is not None:
        last = LastMessage(
            id=row.m_id,
            direction=row.m_direction,
            content_type=row.m_content_type,
            body_preview=row.m_body_preview,
            body_truncated=bool(row.m_body_truncated),
            sender_customer_id=row.m_sender_customer_id,
            sent_at=row.m_sent_at,
        )
    return InboxConversation(
        id=row.id,
        type=row.type,
        status=row.status,
        channel=row.channel,
        external_id=row.external_id,
        group_name=row.group_name,
        group_avatar=row.group_avatar,
        group_metadata=row.group_metadata or {},
        last_message_at=row.last_message_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_activity_at=row.last_activity_at,
        last_message=last,
    )
