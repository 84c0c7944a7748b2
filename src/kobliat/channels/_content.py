"""What one provider message says, in kobliat's terms, before it becomes an InboundMessage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kobliat.channels.records import ContentType


@dataclass(frozen=True, slots=True)
class Content:
    """The content type, body and type-specific metadata of one provider message."""

    content_type: ContentType
    body: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def joined(parts: list[str | None], separator: str) -> str | None:
    """The non-empty parts joined, or None when there are none."""
    kept = [part for part in parts if part]
    return separator.join(kept) if kept else None
