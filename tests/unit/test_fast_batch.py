"""How the fast path's batch document carries each delivery's parameters."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

import orjson
import pytest

from kobliat import ingest_fast, jsonlimits


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
    direct, first = len(ingest_fast.PARAM_TYPES), len(ingest_fast.FIRST_PARAM_TYPES)
    assert statement.count("e->>") == direct + first  # each function takes all of its own
    assert f"jsonb_array_length(e) = {direct} THEN kobliat_ingest_direct(" in statement
    assert "ELSE kobliat_ingest_first(" in statement and f"(e->>{first - 1})::jsonb)" in statement
    assert statement.count("decode(e->>2, 'base64')") == 2
    assert statement.endswith("ORDER BY n")


@pytest.mark.parametrize(
    ("body", "plain"),
    [
        (b'{"entry": [{"text": "hello", "n": 1.5e10}]}', True),
        (b'  {"a": "caf\\u00e9"}', True),
        (b'{"a": NaN}', False),
        (b'{"a": -Infinity}', False),
        (b'{"a": 1e400}', False),
        (b'{"a": "\\ud800"}', False),
        (b'{"a": "{\\"b\\": \\"\\\\udfff\\"}"}', False),  # JSON text inside a JSON string
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", False),
        (b"Body=hello&From=%2B15550001", False),  # a form: walked the long way
    ],
)
def test_a_body_is_plainly_storable_only_when_nothing_in_it_can_break_a_limit(
    body: bytes, plain: bool
) -> None:
    assert jsonlimits.plainly_storable(body) is plain
    if plain:  # and then walking what it parses to finds nothing either
        assert jsonlimits.unstorable(orjson.loads(body)) is None
