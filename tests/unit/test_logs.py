"""Phone numbers never reach the logs in clear."""

from __future__ import annotations

import logging
from typing import Any

from kobliat.logs import MaskPhones, mask_phones, processors


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
