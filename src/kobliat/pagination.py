"""Opaque keyset cursors: the sort key of the last row of a page, encoded.

A page after a cursor is `WHERE (k1, k2) > (v1, v2) ORDER BY k1, k2 LIMIT n` on an index, so page
10,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


class CursorError(ValueError):
    """A cursor kobliat did not issue (or one for another list)."""


def encode(kind: str, *values: Any) -> str:
    """Encode a list position; `kind` keeps one list's cursor from being used on another."""
    plain = [
        v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v
        for v in values
    ]
    raw = json.dumps([kind, *plain], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str, *types: type) -> tuple[Any, ...]:
    """Decode a cursor made by `encode(kind, ...)` into values of `types`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
    # RecursionError: a forged cursor of thousands of nested brackets.
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise CursorError("cursor is not one this list issued") from exc
    if not isinstance(found, list) or len(found) != len(types) + 1 or found[0] != kind:
        raise CursorError("cursor is not one this list issued")
    try:
        return tuple(
            _convert(value, wanted) for value, wanted in zip(found[1:], types, strict=True)
        )
    except (ValueError, TypeError) as exc:
        raise CursorError("cursor is not one this list issued") from exc


def _convert(value: Any, wanted: type) -> Any:
    if wanted is datetime:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment
    if wanted is UUID:
        return UUID(value)
    if wanted is int:
        # Positions are BIGINT columns: a larger number is no position (and no 500).
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise TypeError("not a 64-bit int")
        return value
    if not isinstance(value, wanted):
        raise TypeError(f"not a {wanted.__name__}")
    return value


def page_of(
    rows: Sequence[T], *, limit: int, kind: str, key: Callable[[T], tuple[Any, ...]]
) -> tuple[list[T], str | None]:
    """Cut `limit + 1` fetched rows to a page; the cursor (from the last row's sort `key`) is
    given only when the extra row proved that another page exists."""
    items = list(rows[:limit])
    if len(rows) > limit:
        return items, encode(kind, *key(items[-1]))
    return items, None
