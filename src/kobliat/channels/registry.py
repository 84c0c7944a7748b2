"""Every channel kobliat speaks, one adapter object each, in one registry.

An adapter gathers what kobliat knows of a channel: the settings that hold its secrets (and
how `kobliat dev-secrets` makes fresh ones), its signature header, how a stored delivery is
parsed, and how replies are sent. The inbox, `dev-secrets` and the sender read this registry;
adding a channel is its module plus one line in `CHANNELS`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import ParsedWebhook, PayloadError
from kobliat.settings import Settings

if TYPE_CHECKING:
    from kobliat.sending.clients import Client

Parser = Callable[[bytes, Mapping[str, str], datetime, Settings], ParsedWebhook]


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel: webhook verification facts, parsing and sending."""

    name: str  # the webhook path (/webhooks/{name}) and the inbox's channel
    signature_header: str
    secrets: Mapping[str, Callable[[], str]]  # setting → a fresh value for development
    parse: Parser
    can_send: Callable[[Settings], bool]  # the channel's sending credentials are set
    sender: Callable[[Settings], Client]


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"form body is not UTF-8: {exc}") from exc
    return parse_qsl(text, keep_blank_values=True)


def _whatsapp_sender(settings: Settings) -> Client:
    from kobliat.sending.whatsapp_api import WhatsAppClient

    return WhatsAppClient(settings)


def _telegram_sender(settings: Settings) -> Client:
    from kobliat.sending.telegram_api import TelegramClient

    return TelegramClient(settings)


def _twilio_sender(settings: Settings) -> Client:
    from kobliat.sending.twilio_api import TwilioClient

    return TwilioClient(settings)


def _generic_sender(settings: Settings) -> Client:
    from kobliat.sending.generic_api import GenericClient

    return GenericClient(settings)


WHATSAPP = Channel(
    name="whatsapp",
    signature_header=whatsapp.SIGNATURE_HEADER,
    secrets={
        "KOBLIAT_WHATSAPP_APP_SECRET": lambda: secrets.token_hex(16),
        "KOBLIAT_WHATSAPP_VERIFY_TOKEN": lambda: secrets.token_urlsafe(16),
    },
    parse=lambda body, _headers, _at, _settings: whatsapp.parse(body),
    can_send=lambda s: bool(s.whatsapp_access_token and s.whatsapp_api_url),
    sender=_whatsapp_sender,
)
TELEGRAM = Channel(
    name="telegram",
    signature_header=telegram.SECRET_HEADER,
    secrets={"KOBLIAT_TELEGRAM_SECRET_TOKEN": lambda: secrets.token_urlsafe(24)},
    parse=lambda body, _headers, at, settings: telegram.parse(
        body, bot_id=settings.telegram_bot_id, received_at=at
    ),
    can_send=lambda s: s.telegram_bot_token is not None,
    sender=_telegram_sender,
)
TWILIO = Channel(
    name="twilio",
    signature_header=twilio.SIGNATURE_HEADER,
    secrets={"KOBLIAT_TWILIO_AUTH_TOKEN": lambda: secrets.token_hex(16)},
    parse=lambda body, _headers, at, _settings: twilio.parse(form_pairs(body), received_at=at),
    can_send=lambda s: bool(s.twilio_account_sid and s.twilio_auth_token),
    sender=_twilio_sender,
)
GENERIC = Channel(
    name="generic",
    signature_header="webhook-signature",
    secrets={
        "KOBLIAT_GENERIC_WEBHOOK_SECRET": lambda: (
            "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        )
    },
    parse=lambda body, headers, _at, _settings: generic.parse(
        body, delivery_id=headers["webhook-id"]
    ),
    can_send=lambda s: bool(s.generic_outbound_url and s.generic_webhook_secret),
    sender=_generic_sender,
)

CHANNELS: dict[str, Channel] = {c.name: c for c in (WHATSAPP, TELEGRAM, TWILIO, GENERIC)}


def get(name: str) -> Channel:
    """The channel of this name; ValueError when kobliat has none."""
    found = CHANNELS.get(name)
    if found is None:
        raise ValueError(f"no channel {name!r}")
    return found
