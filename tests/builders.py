"""Small keyword-only builders for test data, going through the real services."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from kobliat.conversations import service as conversations
from kobliat.conversations.model import Conversation
from kobliat.customers import service as customers
from kobliat.customers.model import Customer
from kobliat.db.engine import Database
from kobliat.db.tables import outbox

_numbers = itertools.count(1)


def a_customer(
    db: Database,
    *,
    external_type: str = "telegram",
    external_id: str | None = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Customer:
    """A stored customer."""
    ident = external_id or str(100000 + next(_numbers))
    customer, _ = db.run(
        lambda uow: customers.find_or_create(
            uow, external_type=external_type, external_id=ident, name=name, metadata=metadata
        )
    )
    return customer


def a_conversation(
    db: Database,
    *,
    type: str = "direct",
    channel: str = "whatsapp",
    participants: list[UUID] | None = None,
    roles: list[str | None] | None = None,
    group_name: str | None = None,
    external_id: str | None = None,
) -> Conversation:
    """A stored conversation (participants made up when not given)."""
    ids = participants or [a_customer(db).id for _ in range(2)]
    given_roles = roles or [None] * len(ids)
    conversation, _ = db.run(
        lambda uow: conversations.find_or_open(
            uow,
            type=type,
            channel=channel,  # type: ignore[arg-type]
            participants=list(zip(ids, given_roles, strict=True)),
            group_name=group_name,
            external_id=external_id,
        )
    )
    return conversation


def events_of(db: Database, event_type: str | None = None) -> list[dict[str, Any]]:
    """Envelopes in the outbox, in id order, optionally of one type."""
    stmt = select(outbox.c.envelope).order_by(outbox.c.id)
    if event_type is not None:
        stmt = stmt.where(outbox.c.event_type == event_type)
    with db.reading() as conn:
        return [row.envelope for row in conn.execute(stmt)]


def count(db: Database, table: Any) -> int:
    """Rows in a table."""
    with db.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
