"""Structured logging (structlog) with phone numbers and e-mail addresses masked, secret query
parameters redacted, and the configured secrets never rendered."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import structlog

# A run of 7-15 digits, optionally after + or its URL encoding %2B, not inside a longer token.
_PHONE = re.compile(r"(?:(?<=%2B)|(?<![\w.]))(\+?)(\d{2,4})\d{3,9}(\d{2})(?!\w)")
# The same with separators: "+44 7700 900123", "+1 (555) 123-4567", "07700 900123".
_SPACED_PHONE = re.compile(r"(?<![\w.+\-])(\+|%2B)?\(?\d[\d()]*(?:[ .\-]\(?\d[\d()]*){1,6}(?!\w)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*(@|%40)([\w-]+(?:\.[\w-]+)+)")
# Query parameters whose values are credentials (Meta's hub.verify_token and the like).
_SECRET_PARAM = re.compile(r"token|secret|password|passwd|signature|api[_-]?key|auth", re.I)
REDACTED = "[redacted]"
_secrets: tuple[str, ...] = ()


def mask_phones(text: str) -> str:
    """Mask the middle digits of phone-number-like runs: +447700900123 → +4477*****23,
    +44 7700 900123 → +44 77** ****23."""
    return _SPACED_PHONE.sub(_mask_spaced, _PHONE.sub(_mask_run, text))


def _mask_run(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}*****{match.group(3)}"


def _mask_spaced(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    # A leading + marks a phone number; without it, dashes alone could be a date or an id.
    if not 7 <= digits <= 15 or (match.group(1) is None and _DATE.match(text)):
        return text
    out, seen = [], 0
    for char in text:
        if char.isdigit():
            seen += 1
            char = char if seen <= 4 or seen > digits - 2 else "*"
        out.append(char)
    return "".join(out)


def mask_emails(text: str) -> str:
    """Mask the local part of e-mail addresses: alice@example.com → a***@example.com."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}{m.group(3)}", text)


def mask(text: str) -> str:
    """Personal data and the configured secrets out of one logged string."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "@" in text or "%40" in text:
        text = mask_emails(text)
    return mask_phones(text)


def redact_query(query: bytes) -> str:
    """A query string as logged: secret parameters redacted, personal data masked."""
    pairs = parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
    shown = [(k, REDACTED if _SECRET_PARAM.search(k) else mask(v)) for k, v in pairs]
    return urlencode(shown, quote_via=quote, safe="*@[]")


def _mask_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask(value)
    return event


class MaskPhones(logging.Filter):
    """A logging filter masking personal data and secrets in a record's message, arguments and
    traceback (uvicorn's and alembic's logs go through the standard library)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging: no handlers of its own, so its lines reach the root handler and come
    out in kobliat's format, masked like every other line."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def _shared() -> list[Any]:
    """What every line gets, from structlog or the standard library (uvicorn, alembic)."""
    return [
        structlog.contextvars.merge_contextvars,  # request_id, bound per HTTP request
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]


def processors(fmt: str = "console") -> list[Any]:
    """The structlog chain, ending in the renderer of `fmt` (`console` or `json`)."""
    return [
        *_shared(),
        # After the exception is text: database errors quote their parameters (phone numbers).
        structlog.processors.format_exc_info,
        _mask_event,
        _renderer(fmt),
    ]


def configure(level: str = "INFO", *, secrets: Iterable[str] = (), fmt: str = "console") -> None:
    """Set up structlog and the standard library's logging (uvicorn, alembic) to one format,
    `console` or `json`; `secrets` are replaced by a marker wherever they would appear."""
    global _secrets
    _secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _mask_event,
            _renderer(fmt),
        ],
    )
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level.upper())
    for handler in root.handlers:
        handler.setFormatter(formatter)
        if not any(isinstance(f, MaskPhones) for f in handler.filters):
            handler.addFilter(MaskPhones())
    # httpx logs every request's URL at INFO, and a Telegram Bot API URL holds the bot token.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=processors(fmt),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def secrets_of(settings: Any) -> list[str]:
    """Every secret value in the settings (channel secrets, configured API keys)."""
    from pydantic import SecretStr

    found = [
        value.get_secret_value()
        for value in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(value, SecretStr)
    ]
    return [*found, *settings.configured_api_keys()]
