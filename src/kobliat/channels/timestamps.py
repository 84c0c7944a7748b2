"""Provider timestamps to timezone-aware UTC datetimes, shared by every channel."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from kobliat.channels.records import PayloadError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_unix(value: object, *, field: str = "timestamp") -> datetime:
    """Unix seconds (int, float or a numeric string, as providers send them) to UTC."""
    # bool is an int subclass: `true` in a payload is not a timestamp.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{field} must be unix seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(value)
        return _EPOCH + timedelta(seconds=seconds)
    except (ValueError, OverflowError) as exc:
        raise PayloadError(f"{field} must be unix seconds, got {value!r}") from exc


def parse_iso(value: str, *, field: str = "timestamp") -> datetime:
    """An ISO 8601 string with an offset (``Z`` or ``±hh:mm``) to UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(f"{field} must be ISO 8601, got {value!r}") from exc
    # A naive time would be read in whatever zone the server runs in: refuse to guess.
    if parsed.tzinfo is None:
        raise PayloadError(f"{field} must carry a UTC offset, got {value!r}")
    return parsed.astimezone(UTC)


def from_unix_or_iso(value: object, *, field: str = "timestamp") -> datetime:
    """Unix seconds (number or numeric string) or an ISO 8601 string with offset, to UTC."""
    if isinstance(value, str) and not _is_number(value):
        return parse_iso(value, field=field)
    return from_unix(value, field=field)


def to_iso(moment: datetime) -> str:
    """A datetime as ISO 8601 in UTC, for JSON metadata."""
    return moment.astimezone(UTC).isoformat()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
