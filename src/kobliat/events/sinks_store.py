"""Every SQL statement about sinks (the NATS stream and HTTP subscriptions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, and_, delete, insert, or_, select

from kobliat.db import dialect
from kobliat.db.tables import sinks
from kobliat.db.types import utcnow
from kobliat.events.delivery import NATS_SINK_ID, Sink


def _sink(row: Row[Any]) -> Sink:
    types = row.event_types
    return Sink(
        id=row.id,
        kind=row.kind,
        url=row.url,
        event_types=tuple(types) if types is not None else None,
        secret=row.secret,
        created_at=row.created_at,
    )


def insert_sink(conn: Connection, sink: Sink) -> None:
    """Store a new sink."""
    conn.execute(
        insert(sinks).values(
            id=sink.id,
            kind=sink.kind,
            url=sink.url,
            event_types=list(sink.event_types) if sink.event_types is not None else None,
            secret=sink.secret,
            created_at=sink.created_at,
        )
    )


def ensure_nats_sink(conn: Connection) -> None:
    """Register the NATS stream as a sink (once, whichever relay gets there first)."""
    stmt = dialect.dialect_insert(conn, sinks).values(
        id=NATS_SINK_ID, kind="nats", created_at=utcnow()
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=[sinks.c.id]))


def all_sinks(conn: Connection) -> list[Sink]:
    """Every sink, NATS included."""
    return [_sink(row) for row in conn.execute(select(sinks).order_by(sinks.c.created_at))]


def get_sink(conn: Connection, sink_id: UUID, *, kind: str) -> Sink | None:
    """The sink of that kind with that id, if any."""
    row = conn.execute(select(sinks).where(sinks.c.id == sink_id, sinks.c.kind == kind)).first()
    return None if row is None else _sink(row)


def page_of_sinks(
    conn: Connection, *, kind: str, after: tuple[datetime, UUID] | None, limit: int
) -> list[Sink]:
    """Sinks of one kind in creation order, after a keyset position."""
    stmt = select(sinks).where(sinks.c.kind == kind)
    if after is not None:
        created_at, sink_id = after
        stmt = stmt.where(
            or_(
                sinks.c.created_at > created_at,
                and_(sinks.c.created_at == created_at, sinks.c.id > sink_id),
            )
        )
    stmt = stmt.order_by(sinks.c.created_at, sinks.c.id).limit(limit)
    return [_sink(row) for row in conn.execute(stmt)]


def delete_sink(conn: Connection, sink_id: UUID, *, kind: str) -> bool:
    """Delete a sink (its delivery heads go with it); False when there was none."""
    result = conn.execute(delete(sinks).where(sinks.c.id == sink_id, sinks.c.kind == kind))
    return result.rowcount > 0
