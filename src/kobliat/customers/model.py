"""The Customer aggregate: plain data, its invariants, and the events it raises."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from kobliat.events.envelope import DomainEvent


@dataclass(frozen=True, slots=True)
class Customer:
    """A person (or business endpoint) known by one identity on one channel."""

    id: UUID
    external_id: str
    external_type: str
    name: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def register(
        cls,
        *,
        external_type: str,
        external_id: str,
        name: str | None,
        metadata: dict[str, Any] | None,
        now: datetime,
    ) -> Customer:
        """A new customer (identity already normalised)."""
        return cls(
            id=uuid4(),
            external_id=external_id,
            external_type=external_type,
            name=name,
            metadata=dict(metadata or {}),
            created_at=now,
            updated_at=now,
        )

    def created_event(self) -> DomainEvent:
        """`customer.created`, raised once when the customer is first stored."""
        return DomainEvent(
            type="customer.created",
            aggregate_type="customer",
            aggregate_id=self.id,
            data={
                "customer_id": str(self.id),
                "external_id": self.external_id,
                "external_type": self.external_type,
                "name": self.name,
                "metadata": self.metadata,
            },
            time=self.created_at,
        )

    def updated(
        self, *, name: str | None = None, metadata: dict[str, Any] | None = None, now: datetime
    ) -> tuple[Customer, DomainEvent | None]:
        """Apply a profile change; metadata merges (RFC 7396: null removes a key).

        Returns the customer as it now is and `customer.updated`, or no event when nothing
        changed.
        """
        changes: dict[str, Any] = {}
        new_name = self.name
        if name is not None and name != self.name:
            new_name = name
            changes["name"] = name
        new_metadata = self.metadata
        if metadata:
            merged = merge_patch(self.metadata, metadata)
            if merged != self.metadata:
                new_metadata = merged
                changes["metadata"] = metadata
        if not changes:
            return self, None
        after = replace(self, name=new_name, metadata=new_metadata, updated_at=now)
        event = DomainEvent(
            type="customer.updated",
            aggregate_type="customer",
            aggregate_id=self.id,
            data={
                "customer_id": str(self.id),
                "changes": changes,
                "name": after.name,
                "metadata": after.metadata,
            },
            time=now,
        )
        return after, event


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch of two objects.

    Written here because the `json-merge-patch` package implements the superseded RFC 7386.
    """
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = value
    return result
