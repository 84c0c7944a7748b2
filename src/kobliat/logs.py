"""Structured logging (structlog) with phone numbers masked and secrets never rendered."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"(?<![\w.])(\+?)(\d{2,4})\d{3,9}(\d{2})(?!\w)")


def mask_phones(text: str) -> str:
    """Mask the middle digits of phone-number-like runs: +447700900123 → +4477*****23."""
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)}*****{m.group(3)}", text)


def _mask_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask_phones(value)
    return event


def configure(level: str = "INFO") -> None:
    """Set up structlog and the standard library's logging to one console format."""
    logging.basicConfig(level=level.upper(), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _mask_event,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
