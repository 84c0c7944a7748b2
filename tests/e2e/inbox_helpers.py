"""Putting deliveries straight into the inbox, reading it back, and breaking the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kobliat.channels.samples.signing import whatsapp_headers
from kobliat.db.engine import Database
from kobliat.db.tables import inbox
from kobliat.db.types import utcnow
from kobliat.inbox import store
from kobliat.inbox.model import Delivery
from tests.e2e.webhooks import WHATSAPP_SECRET


def store_unprocessed(
    db: Database, body: bytes, key: str, *, channel: str = "whatsapp", **headers: str
) -> None:
    """What a crash between storing a delivery and processing it would leave."""
    kept = whatsapp_headers(body, WHATSAPP_SECRET) if channel == "whatsapp" else headers
    delivery = Delivery(channel, body, kept, utcnow())
    db.run(
        lambda uow: store.insert(
            uow.connection, delivery, delivery_key=key, processed_at=None, next_attempt_at=utcnow()
        )
    )


def inbox_rows(db: Database) -> list[dict[str, Any]]:
    """Every inbox row, in insert order."""
    with db.reading() as conn:
        return [dict(row._mapping) for row in conn.execute(select(inbox).order_by(inbox.c.id))]


def make_due(db: Database, **values: Any) -> None:
    """Make every inbox row due now (and set `values` on it)."""
    db.run(
        lambda uow: uow.connection.execute(
            inbox.update().values(next_attempt_at=utcnow(), **values)
        )
    )


def rename_table(db: Database, old: str, new: str) -> None:
    """A real database failure for whatever uses the table, undone by renaming it back."""
    db.run(lambda uow: uow.connection.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}"))
