"""Domain events as plain data, and their CloudEvents 1.0 JSON envelope.

Plain Python on purpose: the domain models raise these without knowing about storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from kobliat.tracing import current_traceparent

SOURCE = "kobliat"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Something that happened to one aggregate (a customer or a conversation)."""

    type: str  # e.g. "conversation.opened"
    aggregate_type: str  # "customer" | "conversation"
    aggregate_id: UUID
    data: dict[str, Any]
    id: UUID = field(default_factory=uuid4)
    time: datetime = field(default_factory=_now)
    # The W3C trace context of the request that caused it (CloudEvents distributed tracing).
    traceparent: str | None = field(default_factory=current_traceparent)


def isoformat(moment: datetime) -> str:
    """ISO 8601 with offset, UTC, as every timestamp kobliat emits."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_cloudevent(event: DomainEvent, *, sequence: int) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode JSON for an event.

    `data` carries the event's fields plus `event_id` (= the envelope id) and `timestamp`.
    `sequence` is the event's position among its aggregate's events (1, 2, ...).
    """
    envelope = {
        "specversion": "1.0",
        "id": str(event.id),
        "source": SOURCE,
        "type": event.type,
        "subject": str(event.aggregate_id),
        "time": isoformat(event.time),
        "datacontenttype": "application/json",
        "sequence": sequence,
        "aggregatetype": event.aggregate_type,
        "data": {"event_id": str(event.id), **event.data, "timestamp": isoformat(event.time)},
    }
    if event.traceparent is not None:
        envelope["traceparent"] = event.traceparent
    return envelope
