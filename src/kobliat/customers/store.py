"""Every SQL statement of the customer context."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, and_, bindparam, or_, select, update

from kobliat.customers.model import Customer
from kobliat.db import dialect
from kobliat.db.tables import customers


def _to_customer(row: Row[Any]) -> Customer:
    return Customer(
        id=row.id,
        external_id=row.external_id,
        external_type=row.external_type,
        name=row.name,
        metadata=row.metadata or {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def insert_if_absent(conn: Connection, customer: Customer) -> bool:
    """Insert unless the identity exists already; True when this call inserted it."""
    values = {
        "id": customer.id,
        "external_id": customer.external_id,
        "external_type": customer.external_type,
        "name": customer.name,
        "metadata": customer.metadata,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }
    return conn.execute(_insert_if_absent(conn.dialect.name), values).first() is not None


@functools.cache
def _insert_if_absent(dialect_name: str) -> Any:
    # Built once per dialect: every first contact runs it.
    return (
        dialect.insert_for(dialect_name, customers)
        .on_conflict_do_nothing(index_elements=[customers.c.external_type, customers.c.external_id])
        .returning(customers.c.id)
    )


def get(conn: Connection, customer_id: UUID, *, for_update: bool = False) -> Customer | None:
    """The customer with this id, optionally row-locked for an update."""
    stmt = select(customers).where(customers.c.id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return _to_customer(row) if row else None


def get_by_identity(
    conn: Connection, external_type: str, external_id: str, *, for_update: bool = False
) -> Customer | None:
    """The customer with this (normalised) identity."""
    params = {"external_type": external_type, "external_id": external_id}
    row = conn.execute(_by_identity(for_update), params).first()
    return _to_customer(row) if row else None


@functools.cache
def _by_identity(for_update: bool) -> Select[Any]:
    # Built once: every webhook looks up its sender and business endpoint.
    stmt = select(customers).where(
        customers.c.external_type == bindparam("external_type"),
        customers.c.external_id == bindparam("external_id"),
    )
    return stmt.with_for_update() if for_update else stmt


def get_many(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, Customer]:
    """The customers with these ids, by id (unknown ids are absent)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(customers).where(customers.c.id.in_(wanted))).all()
    return {row.id: _to_customer(row) for row in rows}


def save_profile(conn: Connection, customer: Customer) -> None:
    """Persist name, metadata and updated_at."""
    conn.execute(
        update(customers)
        .where(customers.c.id == customer.id)
        .values(name=customer.name, metadata=customer.metadata, updated_at=customer.updated_at)
    )


def page(
    conn: Connection,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    external_type: str | None = None,
) -> Sequence[Customer]:
    """Customers oldest first, keyset-paginated on (created_at, id)."""
    stmt = select(customers)
    if external_type is not None:
        stmt = stmt.where(customers.c.external_type == external_type)
    if after is not None:
        created, last_id = after
        stmt = stmt.where(
            or_(
                customers.c.created_at > created,
                and_(customers.c.created_at == created, customers.c.id > last_id),
            )
        )
    stmt = stmt.order_by(customers.c.created_at, customers.c.id).limit(limit)
    return [_to_customer(row) for row in conn.execute(stmt)]
