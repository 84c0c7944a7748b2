"""Provider timestamps become aware UTC datetimes, or a PayloadError naming the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from kobliat.channels.records import PayloadError
from kobliat.channels.timestamps import from_unix, from_unix_or_iso, parse_iso, to_iso

MOMENT = datetime(2026, 1, 1, 10, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("value", [1767261845, "1767261845", 1767261845.0])
def test_unix_seconds_in_any_provider_spelling_become_utc(value: object) -> None:
    assert from_unix(value) == MOMENT


def test_fractional_seconds_are_kept() -> None:
    assert from_unix("1767261845.25") == MOMENT + timedelta(milliseconds=250)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "ts must be unix seconds, got NoneType"),
        (True, "ts must be unix seconds, got bool"),
        ("soon", "ts must be unix seconds, got 'soon'"),
        ("nan", "ts must be unix seconds, got 'nan'"),
        (10**30, "ts must be unix seconds"),
        ([1], "ts must be unix seconds, got list"),
    ],
)
def test_non_timestamps_are_rejected_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        from_unix(value, field="ts")


def test_iso_with_offset_is_converted_to_utc() -> None:
    assert parse_iso("2026-01-01T12:04:05+02:00") == MOMENT
    assert parse_iso("2026-01-01T10:04:05Z").tzinfo == UTC


def test_iso_without_offset_is_refused() -> None:
    with pytest.raises(PayloadError, match="must carry a UTC offset"):
        parse_iso("2026-01-01T10:04:05")


def test_either_spelling_is_accepted_where_both_are_allowed() -> None:
    assert from_unix_or_iso("2026-01-01T10:04:05Z") == MOMENT
    assert from_unix_or_iso("1767261845") == MOMENT
    assert from_unix_or_iso(1767261845) == MOMENT


def test_to_iso_writes_utc_with_offset() -> None:
    assert to_iso(MOMENT) == "2026-01-01T10:04:05+00:00"
