"""Shared fixtures of the channel adapter tests: the stored webhook bodies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "channels"


def _read(channel: str, name: str) -> bytes:
    suffix = ".form" if channel == "twilio" else ".json"
    return (FIXTURES / channel / f"{name}{suffix}").read_bytes()


def _form(name: str) -> list[tuple[str, str]]:
    return parse_qsl(_read("twilio", name).decode(), keep_blank_values=True)


@pytest.fixture
def raw() -> Callable[[str, str], bytes]:
    """Read a fixture body: raw("whatsapp", "text")."""
    return _read


@pytest.fixture
def form() -> Callable[[str], list[tuple[str, str]]]:
    """Read a Twilio fixture as decoded form pairs: form("sms")."""
    return _form
