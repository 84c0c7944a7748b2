"""Normalisation of external ids, per channel, so one person is one customer.

Phone numbers become E.164 with `+` (the `phonenumbers` library, not regexes). WhatsApp reports
some numbers in forms that differ from what users type; those are folded into one canonical form:
- Brazil: mobiles gained a leading 9 after the area code; old WhatsApp ids lack it
  (55 DD NNNNNNNN vs 55 DD 9NNNNNNNN). Canonical: with the 9.
- Mexico: WhatsApp may report mobiles as 521 + 10 digits while E.164 is 52 + 10 digits.
  Canonical: without the 1.
Argentina's 549/54 is deliberately left alone: a 54 number without the 9 can be a landline that
belongs to someone else.

SMS senders are not always numbers: short codes (`12345`) and alphanumeric sender ids (`MYBANK`)
are kept as they are (upper-cased), so each is one stable customer. A bare run of 3-8 digits is
always a short code: providers write international numbers with `+`, and without it about half of
all 8-digit (and 9 % of 6-digit) codes would parse as some country's possible number.

Digits without `+` are read as a number with its country code (WhatsApp's wa_ids: `447911123456`),
`00` as the international prefix. A number with a single leading 0 is in national form
(`0612345678`): its country is unknown, so it is refused unless a default region is given
(KOBLIAT_DEFAULT_PHONE_REGION, e.g. `NL`), never guessed.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

from kobliat.errors import InvalidInput

PHONE_TYPES = frozenset({"whatsapp", "sms", "phone"})
_NO_COUNTRY_CODE = "phone-number-without-country-code"
# A trunk prefix (one 0, not the 00 of an international call) before a digit.
_NATIONAL_FORM = re.compile(r"0[1-9]")
_SEPARATORS = re.compile(r"[ -]")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
# GSM alphanumeric sender ids: up to 11 ASCII letters, digits and spaces, at least one letter.
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")


def normalise(
    external_type: str, external_id: str, *, default_region: str | None = None
) -> tuple[str, str]:
    """The canonical (external_type, external_id) pair; raises InvalidInput when unusable.

    `default_region` (ISO 3166 code) is the country of phone numbers given in national form.
    """
    kind = external_type.strip().lower()
    raw = external_id.strip()
    if not kind:
        raise InvalidInput("external_type must not be empty", code="invalid-external-type")
    if not raw:
        raise InvalidInput("external_id must not be empty", code="invalid-external-id")
    if kind == "sms":
        return kind, normalise_sms_address(raw, default_region=default_region)
    if kind in PHONE_TYPES:
        return kind, normalise_phone(raw, default_region=default_region)
    if kind == "email":
        return kind, raw.lower()
    digits = raw.removeprefix("-")
    if kind == "telegram" and digits.isascii() and digits.isdigit():  # not "²" or "--5"
        return kind, str(int(raw))
    return kind, raw


def normalise_sms_address(raw: str, *, default_region: str | None = None) -> str:
    """An SMS sender or recipient: E.164, a short code, or an upper-cased alphanumeric id."""
    compact = raw.replace(" ", "").replace("-", "")
    if _SHORT_CODE.fullmatch(compact):
        return compact
    if _ALPHANUMERIC_SENDER.fullmatch(raw):
        return raw.upper()
    try:
        return normalise_phone(raw, default_region=default_region)
    except InvalidInput as exc:
        if exc.code == _NO_COUNTRY_CODE:
            raise
        raise InvalidInput(
            "external_id is not an SMS address: a phone number in international form, a short "
            f"code (3-8 digits) or an alphanumeric sender id (up to 11 letters, digits or "
            f"spaces); {exc.detail}",
            code="invalid-sms-address",
        ) from exc


@functools.lru_cache(maxsize=16384)  # parsing costs ~0.1 ms, and senders write again and again
def normalise_phone(raw: str, *, default_region: str | None = None) -> str:
    """E.164 with `+`, Brazil's and Mexico's WhatsApp variants folded; InvalidInput if no phone
    (or one in national form without a `default_region`)."""
    candidate = _SEPARATORS.sub("", raw.removeprefix("whatsapp:").strip())
    region = None
    if _NATIONAL_FORM.match(candidate):
        if default_region is None:
            raise InvalidInput(
                "external_id is a phone number without its country code: write it in "
                "international form (+31 6 12345678), or set KOBLIAT_DEFAULT_PHONE_REGION",
                code=_NO_COUNTRY_CODE,
            )
        region = default_region
    else:
        if not candidate.startswith("+"):  # digits with their country code, or 00 and them
            candidate = "+" + candidate.lstrip("0")
        candidate = _fold_variants(candidate)
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            f"external_id is not a phone number in international form: {exc}",
            code="invalid-phone-number",
        ) from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(
            "external_id is not a possible phone number", code="invalid-phone-number"
        )
    return _fold_variants(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _fold_variants(e164: str) -> str:
    digits = e164[1:]
    if not digits.isdigit():
        return e164
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        # Brazil, old 8-digit mobile: 55 DD NNNNNNNN → 55 DD 9NNNNNNNN
        return "+" + digits[:4] + "9" + digits[4:]
    if digits.startswith("521") and len(digits) == 13:
        return "+52" + digits[3:]
    return e164
