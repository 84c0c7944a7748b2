"""SMS addresses: phone numbers, short codes and alphanumeric sender ids, without a database."""

from __future__ import annotations

import pytest

from kobliat.customers.identity import normalise
from kobliat.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+447700900123", "+447700900123"),
        (" +44 7700 900123 ", "+447700900123"),
        ("447700900123", "+447700900123"),
        ("12345", "12345"),
        (" 898211 ", "898211"),
        ("123", "123"),
        ("12345678", "12345678"),
        ("MYBANK", "MYBANK"),
        (" MyBank ", "MYBANK"),
        ("Clinic B 24", "CLINIC B 24"),
        ("A", "A"),
    ],
)
def test_sms_addresses_get_one_stable_form(raw: str, expected: str) -> None:
    assert normalise("sms", raw) == ("sms", expected)


def test_a_bare_short_code_is_never_read_as_a_phone_number() -> None:
    # With '+' it is a possible number in Niue (+683 1234); without, it is a short code.
    assert normalise("sms", "+6831234") == ("sms", "+6831234")
    assert normalise("sms", "6831234") == ("sms", "6831234")


@pytest.mark.parametrize(
    "raw",
    ["12", "+12345", "123456789", "HELLO-WORLD", "TWELVE CHARS", "Bank!", "ÄPFEL", "+44 MYBANK"],
)
def test_sms_garbage_is_refused_naming_every_accepted_form(raw: str) -> None:
    with pytest.raises(InvalidInput, match="short code") as refused:
        normalise("sms", raw)
    assert refused.value.code == "invalid-sms-address"


@pytest.mark.parametrize("external_type", ["whatsapp", "phone"])
@pytest.mark.parametrize("raw", ["12345", "MYBANK"])
def test_short_codes_and_sender_ids_are_sms_only(external_type: str, raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise(external_type, raw)
    assert refused.value.code == "invalid-phone-number"
