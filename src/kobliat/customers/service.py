"""Customer use cases. They take a unit of work and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from kobliat import pagination
from kobliat.customers import identity, store
from kobliat.customers.model import Customer
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.errors import NotFound


def find_or_create(
    uow: UnitOfWork,
    *,
    external_type: str,
    external_id: str,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    update_profile: bool = False,
    default_region: str | None = None,
) -> tuple[Customer, bool]:
    """The customer with this identity, created (with `customer.created`) if new.

    Safe under concurrency: the unique (external_type, external_id) constraint decides which
    caller creates; the others read the winner's row. With `update_profile`, a name or metadata
    that differs from the stored one is applied (`customer.updated`). `default_region` is the
    country of a phone number given in national form (see `identity`).
    """
    kind, key = identity.normalise(external_type, external_id, default_region=default_region)
    now = utcnow()
    candidate = Customer.register(
        external_type=kind, external_id=key, name=name, metadata=metadata, now=now
    )
    if store.insert_if_absent(uow.connection, candidate):
        uow.emit(candidate.created_event())
        return candidate, True
    existing = store.get_by_identity(uow.connection, kind, key, for_update=update_profile)
    if existing is None:  # deleted between the two statements: nothing deletes customers
        raise RuntimeError(f"customer {kind}:{key} vanished during find-or-create")
    if update_profile:
        existing = _apply(uow, existing, name=name, metadata=metadata, now=now)
    return existing, False


def update_profile(
    uow: UnitOfWork,
    customer_id: UUID,
    *,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Customer:
    """Change a customer's name and/or merge into its metadata."""
    current = store.get(uow.connection, customer_id, for_update=True)
    if current is None:
        raise NotFound(f"no customer {customer_id}", code="customer-not-found")
    return _apply(uow, current, name=name, metadata=metadata, now=utcnow())


def _apply(
    uow: UnitOfWork,
    current: Customer,
    *,
    name: str | None,
    metadata: dict[str, Any] | None,
    now: datetime,
) -> Customer:
    after, event = current.updated(name=name, metadata=metadata, now=now)
    if event is not None:
        store.save_profile(uow.connection, after)
        uow.emit(event)
    return after


def get(conn: Connection, customer_id: UUID) -> Customer:
    """The customer, or NotFound."""
    found = store.get(conn, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}", code="customer-not-found")
    return found


def get_many(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, Customer]:
    """Customers by id; ids without a customer are left out."""
    return store.get_many(conn, ids)


def lookup(
    conn: Connection, *, external_type: str, external_id: str, default_region: str | None = None
) -> Customer | None:
    """The customer with this identity, normalised the same way as on create."""
    kind, key = identity.normalise(external_type, external_id, default_region=default_region)
    return store.get_by_identity(conn, kind, key)


@lru_cache(maxsize=65_536)
def canonical_identity(external_type: str, external_id: str) -> tuple[str, str]:
    """The normalised (type, id) of an identity; remembered, as phone parsing is costly and
    the same senders write again and again."""
    return identity.normalise(external_type, external_id)


def list_page(
    conn: Connection, *, cursor: str | None, limit: int, external_type: str | None = None
) -> tuple[Sequence[Customer], str | None]:
    """A page of customers, oldest first, and the cursor of the next page (None at the end)."""
    after = pagination.decode("customers", cursor, datetime, UUID) if cursor else None
    rows = store.page(
        conn,
        after=after,
        limit=limit + 1,
        external_type=external_type.strip().lower() if external_type else None,
    )
    return pagination.page_of(
        rows, limit=limit, kind="customers", key=lambda c: (c.created_at, c.id)
    )
