"""Every SQL statement of the conversation context."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Update,
    bindparam,
    case,
    delete,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from kobliat.conversations.model import Conversation, Participant
from kobliat.db import dialect
from kobliat.db.tables import conversation_participants as participants_t
from kobliat.db.tables import conversations as conversations_t
from kobliat.db.types import UTCDateTime

c = conversations_t.c
# The partial unique index's predicate, written as SQL text rather than a bound parameter: once
# psycopg prepares a statement, PostgreSQL plans it generically and cannot match `status <> $1`
# to `conversations_open_key_uq` (ON CONFLICT then fails; a lookup cannot use the index).
NOT_CLOSED: ColumnElement[bool] = literal_column("status <> 'closed'")
p = participants_t.c
_PARTICIPANTS_OF = (
    select(participants_t)
    .where(p.conversation_id.in_(bindparam("ids", expanding=True)))
    .order_by(p.conversation_id, p.joined_at, p.id)
)


def _to_conversation(row: Row[Any], members: Sequence[Participant]) -> Conversation:
    return Conversation(
        id=row.id,
        type=row.type,
        status=row.status,
        channel=row.channel,
        external_id=row.external_id,
        conversation_key=row.conversation_key,
        group_name=row.group_name,
        group_avatar=row.group_avatar,
        group_metadata=row.group_metadata or {},
        last_message_at=row.last_message_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        participants=tuple(members),
    )


def _row_values(conv: Conversation) -> dict[str, Any]:
    return {
        "id": conv.id,
        "type": conv.type,
        "status": conv.status,
        "channel": conv.channel,
        "external_id": conv.external_id,
        "conversation_key": conv.conversation_key,
        "group_name": conv.group_name,
        "group_avatar": conv.group_avatar,
        "group_metadata": conv.group_metadata,
        "last_message_at": conv.last_message_at,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "last_activity_at": conv.last_message_at or conv.created_at,
    }


def insert_if_key_free(conn: Connection, conv: Conversation) -> bool:
    """Insert the conversation unless a non-closed one holds its key; True when inserted.

    The partial unique index `conversations_open_key_uq` is what makes concurrent openers agree.
    """
    stmt = _insert_conversation(conn.dialect.name, keyed=conv.conversation_key is not None)
    inserted = conn.execute(stmt, _row_values(conv)).first() is not None
    if inserted and conv.participants:
        conn.execute(
            _INSERT_PARTICIPANT,
            [_participant_values(conv.id, member) for member in conv.participants],
        )
    return inserted


@functools.cache
def _insert_conversation(dialect_name: str, *, keyed: bool) -> Any:
    # Built once per dialect: every first contact runs it.
    stmt = dialect.insert_for(dialect_name, conversations_t)
    if keyed:
        stmt = stmt.on_conflict_do_nothing(
            index_elements=[c.conversation_key], index_where=NOT_CLOSED
        )
    return stmt.returning(c.id)


_INSERT_PARTICIPANT = participants_t.insert()


def _participant_values(conversation_id: UUID, member: Participant) -> dict[str, Any]:
    return {
        "id": uuid4(),
        "conversation_id": conversation_id,
        "customer_id": member.customer_id,
        "role": member.role,
        "joined_at": member.joined_at,
        "metadata": member.metadata,
    }


def add_participant_if_absent(conn: Connection, conversation_id: UUID, member: Participant) -> bool:
    """Insert a membership unless the customer is in already; True when inserted."""
    stmt = (
        dialect.dialect_insert(conn, participants_t)
        .values(**_participant_values(conversation_id, member))
        .on_conflict_do_nothing(index_elements=[p.conversation_id, p.customer_id])
        .returning(p.id)
    )
    return conn.execute(stmt).first() is not None


def remove_participant(conn: Connection, conversation_id: UUID, customer_id: UUID) -> None:
    """Delete a membership."""
    conn.execute(
        delete(participants_t).where(
            p.conversation_id == conversation_id, p.customer_id == customer_id
        )
    )


def get(
    conn: Connection, conversation_id: UUID, *, for_update: bool = False
) -> Conversation | None:
    """The conversation with its participants; `for_update` locks its row until commit."""
    stmt = select(conversations_t).where(c.id == conversation_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return _to_conversation(row, participants_of(conn, [row.id])[row.id])


def find_open_by_key(
    conn: Connection, key: str, *, for_update: bool = False
) -> Conversation | None:
    """The non-closed conversation holding `key`, if any; `for_update` locks its row."""
    row = conn.execute(_open_by_key(for_update), {"key": key}).first()
    if row is None:
        return None
    return _to_conversation(row, participants_of(conn, [row.id])[row.id])


@functools.cache
def _open_by_key(for_update: bool) -> Select[Any]:
    # Built once: every inbound message looks up its conversation.
    stmt = select(conversations_t).where(c.conversation_key == bindparam("key"), NOT_CLOSED)
    return stmt.with_for_update() if for_update else stmt


def participants_of(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, list[Participant]]:
    """Participants of each conversation, in joining order."""
    wanted = list(ids)
    found: dict[UUID, list[Participant]] = defaultdict(list)
    for cid in wanted:
        found[cid] = []
    if not wanted:
        return found
    rows = conn.execute(_PARTICIPANTS_OF, {"ids": wanted})
    for row in rows:
        found[row.conversation_id].append(
            Participant(
                customer_id=row.customer_id,
                role=row.role or "member",
                joined_at=row.joined_at,
                metadata=row.metadata or {},
            )
        )
    return found


def save_details(conn: Connection, conv: Conversation) -> bool:
    """Persist status and group fields; False (nothing written) when a reopen would give the
    key a second non-closed conversation."""
    return _unless_key_taken(
        conn,
        update(conversations_t)
        .where(c.id == conv.id)
        .values(
            status=conv.status,
            group_name=conv.group_name,
            group_avatar=conv.group_avatar,
            group_metadata=conv.group_metadata,
            updated_at=conv.updated_at,
        ),
    )


def save_key(conn: Connection, conv: Conversation) -> bool:
    """Persist a new external id and conversation key; False (nothing written) when another
    non-closed conversation holds that key."""
    return _unless_key_taken(
        conn,
        update(conversations_t)
        .where(c.id == conv.id)
        .values(
            external_id=conv.external_id,
            conversation_key=conv.conversation_key,
            updated_at=conv.updated_at,
        ),
    )


def _unless_key_taken(conn: Connection, stmt: Update) -> bool:
    """Run `stmt` in a savepoint; False when `conversations_open_key_uq` refuses it."""
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except IntegrityError as exc:
        if dialect.is_unique_violation(exc, "conversations_open_key_uq"):
            return False
        raise
    return True


def record_message_time(conn: Connection, conversation_id: UUID, at: datetime) -> bool:
    """Move last_message_at forward to `at` (never back: providers deliver out of order)."""
    result = conn.execute(_RECORD_MESSAGE_TIME, {"conversation_id": conversation_id, "at": at})
    return bool(result.rowcount)


def _record_message_time() -> Update:
    moment = bindparam("at", type_=UTCDateTime())
    later = or_(c.last_message_at.is_(None), c.last_message_at < moment)
    return (
        update(conversations_t)
        .where(c.id == bindparam("conversation_id"))
        .values(
            last_message_at=case((later, moment), else_=c.last_message_at),
            last_activity_at=case((c.last_activity_at < moment, moment), else_=c.last_activity_at),
        )
    )


# Built once: every inbound message runs them.
_RECORD_MESSAGE_TIME = _record_message_time()
