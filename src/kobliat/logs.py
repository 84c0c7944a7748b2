"""Structured logging (structlog) with phone numbers masked and secrets never rendered."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

# A run of 7-15 digits, optionally after + or its URL encoding %2B, not inside a longer token.
_PHONE = re.compile(r"(?:(?<=%2B)|(?<![\w.]))(\+?)(\d{2,4})\d{3,9}(\d{2})(?!\w)")


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


class MaskPhones(logging.Filter):
    """A logging filter masking phone numbers in a record's message (uvicorn's access log
    prints query strings such as ?external_id=+447700900123)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_phones(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(mask_phones(a) if isinstance(a, str) else a for a in record.args)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with phone numbers masked on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_phones"] = {"()": MaskPhones}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("mask_phones")
    return config


def processors() -> list[Any]:
    """The structlog chain, ending in the console renderer."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        # After the exception is text: database errors quote their parameters (phone numbers).
        structlog.processors.format_exc_info,
        _mask_event,
        structlog.dev.ConsoleRenderer(colors=False),
    ]


def configure(level: str = "INFO") -> None:
    """Set up structlog and the standard library's logging to one console format."""
    logging.basicConfig(level=level.upper(), format="%(message)s")
    # httpx logs every request's URL at INFO, and a Telegram Bot API URL holds the bot token.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
