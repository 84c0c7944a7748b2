"""How the fast path's batch document carries each delivery's parameters."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

import orjson

from kobliat import ingest_fast


def test_an_element_carries_bytes_as_base64_and_everything_else_as_json() -> None:
    when = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)
    call = ingest_fast.FastCall(
        params=("whatsapp", b"\x00\xffraw", when, UUID(int=7), '{"a": 1}', None),
        order=("phone", "1555"),
    )
    element = ingest_fast.batch_element(call)
    assert element is not None
    assert orjson.loads(element) == [
        "whatsapp",
        base64.b64encode(b"\x00\xffraw").decode(),
        "2026-01-05T09:00:00.123456+00:00",
        str(UUID(int=7)),
        '{"a": 1}',
        None,
    ]


def test_text_json_cannot_carry_is_left_to_the_general_flow() -> None:
    call = ingest_fast.FastCall(params=("lone \ud800 surrogate",), order=("phone", "1555"))
    assert ingest_fast.batch_element(call) is None


def test_the_batch_statement_takes_every_parameter_in_order() -> None:
    statement = ingest_fast.BATCH_STATEMENT
    assert statement.count("e->>") == len(ingest_fast.PARAM_TYPES)
    assert "decode(e->>2, 'base64')" in statement
    assert statement.endswith("ORDER BY n")
