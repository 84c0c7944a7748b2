"""Phone numbers never reach the logs in clear."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import pytest
import structlog

from kobliat.logs import MaskPhones, configure, mask, mask_phones, processors, redact_query


def test_phone_numbers_are_masked_but_other_numbers_survive() -> None:
    line = "GET /customers?external_type=whatsapp&external_id=%2B447700900123 wa_id=5511987654321"
    masked = mask_phones(line)
    assert "447700900123" not in masked and "5511987654321" not in masked
    assert "+4477*****23" in mask_phones("+447700900123")
    assert mask_phones("took 125 ms, 2026") == "took 125 ms, 2026"


def test_the_access_log_filter_masks_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/customers?external_id=447700900123", "1.1", 200),
        None,
    )
    MaskPhones().filter(record)
    assert "447700900123" not in record.getMessage()


def test_phone_numbers_in_a_logged_exception_are_masked() -> None:
    try:
        raise RuntimeError("[parameters: {'external_id': '+447700900123'}]")
    except RuntimeError as exc:
        event: Any = {"event": "inbox delivery failed again", "exc_info": exc}
    for processor in processors():
        event = processor(None, "error", event)
    assert "+4477*****23" in event
    assert "447700900123" not in event


def test_spaced_phone_numbers_and_addresses_are_masked() -> None:
    for number in ("+44 7700 900123", "+44-7700-900123", "+1 (555) 123-4567", "07700 900123"):
        masked = mask(f"call {number} now")
        assert re.sub(r"\D", "", number) not in re.sub(r"\D", "", masked), masked
    assert mask("mail alice.smith@example.com") == "mail a***@example.com"
    assert "alice" not in mask("external_id=alice%40example.com")
    for kept in ("2026-11-30 04:58:09", "took 125 ms", "v1.2.3", "127.0.0.1:8000"):
        assert mask(kept) == kept


def test_secret_query_parameters_are_redacted_and_values_masked() -> None:
    query = b"hub.mode=subscribe&hub.verify_token=s3cret-token&hub.challenge=42&id=%2B447700900123"
    shown = redact_query(query)
    assert "s3cret-token" not in shown and "hub.verify_token=[redacted]" in shown
    assert "hub.challenge=42" in shown and "447700900123" not in shown
    assert "%0A" in redact_query(b"x=a%0Ab")  # decoded for masking, never a raw new line


def test_configured_secrets_never_render_even_inside_other_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("INFO", secrets=["kbl_the-api-key", ""])
    try:
        logging.getLogger("alembic").warning("connecting with kbl_the-api-key to +447700900123")
        structlog.get_logger("t").info("key", value="Bearer kbl_the-api-key")
    finally:
        configure("INFO")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "kbl_the-api-key" not in text and "[redacted]" in text


def test_tracebacks_in_standard_logging_are_masked() -> None:
    try:
        raise RuntimeError("DETAIL: Key (external_id)=(+447700900123) already exists.")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    MaskPhones().filter(record)
    assert record.exc_text is not None and "447700900123" not in record.exc_text
