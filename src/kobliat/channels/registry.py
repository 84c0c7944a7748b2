"""Every channel kobliat speaks, one adapter object each, in one registry.

An adapter gathers what kobliat knows of a channel: the settings that hold its secrets (and
how `kobliat dev-secrets` makes fresh ones), how a webhook is verified (signature header,
the headers kept with the delivery) and how `kobliat simulate` signs one, how a stored
delivery is parsed, and how replies are sent. The webhook routes (one POST handler per entry),
the inbox, `simulate`, `dev-secrets` and the sender read this registry; adding a channel is its
module plus one line in `CHANNELS`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import ParsedWebhook, PayloadError
from kobliat.channels.samples import signing
from kobliat.settings import Settings

if TYPE_CHECKING:
    from kobliat.sending.clients import Client

Parser = Callable[[bytes, Mapping[str, str], datetime, Settings], ParsedWebhook]
# (raw body, request headers, the URL the provider signed, secret) → whether the request is
# genuine. May raise ValueError when the configured secret itself is unusable.
Verifier = Callable[[bytes, Mapping[str, str], str, str], bool]
# (raw body, the URL it is posted to, secret) → the headers the provider would send with it.
HeaderSigner = Callable[[bytes, str, str], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel: webhook verification facts, parsing and sending."""

    name: str  # the webhook path (/webhooks/{name}) and the inbox's channel
    signature_header: str  # absent → 401 before the body is read
    secret_setting: str  # the Settings field holding the webhook verification secret
    secrets: Mapping[str, Callable[[], str]]  # setting → a fresh value for development
    kept_headers: tuple[str, ...]  # stored with the delivery (besides content-type, user-agent)
    verify: Verifier
    sign: HeaderSigner
    parse: Parser
    can_send: Callable[[Settings], bool]  # the channel's sending credentials are set
    sender: Callable[[Settings], Client]
    webhook_doc: str  # the webhook operation's description
    header_only: bool = False  # the check covers no body: done before the body is read
    acknowledgement: tuple[str, str] | None = None  # (content, media type) instead of JSON
    signs_url: bool = False  # the signature covers the URL the provider called

    @property
    def secret_env(self) -> str:
        """The environment variable that sets the verification secret."""
        return "KOBLIAT_" + self.secret_setting.upper()


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"form body is not UTF-8: {exc}") from exc
    return parse_qsl(text, keep_blank_values=True)


def _twilio_verify(body: bytes, headers: Mapping[str, str], url: str, secret: str) -> bool:
    try:
        pairs = form_pairs(body)
    except PayloadError:
        pairs = []  # cannot be what Twilio signed: the check fails
    return twilio.verify_signature(url, pairs, headers.get(twilio.SIGNATURE_HEADER), secret)


def _generic_sign(body: bytes, _url: str, secret: str) -> dict[str, str]:
    msg_id = "msg_" + secrets.token_hex(8)
    return signing.generic_headers(body, secret, msg_id=msg_id, timestamp=datetime.now(UTC))


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
    secret_setting="whatsapp_app_secret",
    secrets={
        "KOBLIAT_WHATSAPP_APP_SECRET": lambda: secrets.token_hex(16),
        "KOBLIAT_WHATSAPP_VERIFY_TOKEN": lambda: secrets.token_urlsafe(16),
    },
    kept_headers=(whatsapp.SIGNATURE_HEADER.lower(),),
    verify=lambda body, headers, _url, secret: whatsapp.verify_signature(
        body, headers.get(whatsapp.SIGNATURE_HEADER), secret
    ),
    sign=lambda body, _url, secret: signing.whatsapp_headers(body, secret),
    parse=lambda body, _headers, _at, _settings: whatsapp.parse(body),
    can_send=lambda s: bool(s.whatsapp_access_token and s.whatsapp_api_url),
    sender=_whatsapp_sender,
    webhook_doc="WhatsApp Cloud API: `X-Hub-Signature-256` over the raw body.",
)
TELEGRAM = Channel(
    name="telegram",
    signature_header=telegram.SECRET_HEADER,
    secret_setting="telegram_secret_token",
    secrets={"KOBLIAT_TELEGRAM_SECRET_TOKEN": lambda: secrets.token_urlsafe(24)},
    kept_headers=(),  # the secret header is the credential itself: it is never stored
    verify=lambda _body, headers, _url, secret: telegram.verify_signature(
        headers.get(telegram.SECRET_HEADER), secret
    ),
    sign=lambda _body, _url, secret: signing.telegram_headers(secret),
    parse=lambda body, _headers, at, settings: telegram.parse(
        body, bot_id=settings.telegram_bot_id, received_at=at
    ),
    can_send=lambda s: s.telegram_bot_token is not None,
    sender=_telegram_sender,
    webhook_doc="Telegram Bot API: `X-Telegram-Bot-Api-Secret-Token` equals our secret token.",
    header_only=True,
)
TWILIO = Channel(
    name="twilio",
    signature_header=twilio.SIGNATURE_HEADER,
    secret_setting="twilio_auth_token",
    secrets={"KOBLIAT_TWILIO_AUTH_TOKEN": lambda: secrets.token_hex(16)},
    kept_headers=(twilio.SIGNATURE_HEADER.lower(),),
    verify=_twilio_verify,
    sign=lambda body, url, secret: signing.twilio_headers(url, form_pairs(body), secret),
    parse=lambda body, _headers, at, _settings: twilio.parse(form_pairs(body), received_at=at),
    can_send=lambda s: bool(s.twilio_account_sid and s.twilio_auth_token),
    sender=_twilio_sender,
    webhook_doc=(
        "Twilio Messaging: `X-Twilio-Signature` over the URL Twilio called and the form fields."
    ),
    # Empty TwiML: acknowledge without replying to the sender.
    acknowledgement=("<Response/>", "text/xml"),
    signs_url=True,
)
GENERIC = Channel(
    name="generic",
    signature_header="webhook-signature",
    secret_setting="generic_webhook_secret",
    secrets={
        "KOBLIAT_GENERIC_WEBHOOK_SECRET": lambda: (
            "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        )
    },
    kept_headers=("webhook-id", "webhook-timestamp", "webhook-signature"),
    verify=lambda body, headers, _url, secret: generic.verify_signature(body, headers, secret),
    sign=_generic_sign,
    parse=lambda body, headers, _at, _settings: generic.parse(
        body, delivery_id=headers["webhook-id"]
    ),
    can_send=lambda s: bool(s.generic_outbound_url and s.generic_webhook_secret),
    sender=_generic_sender,
    webhook_doc="kobliat's own JSON format, signed with Standard Webhooks (see docs/webhooks.md).",
)

CHANNELS: dict[str, Channel] = {c.name: c for c in (WHATSAPP, TELEGRAM, TWILIO, GENERIC)}


def get(name: str) -> Channel:
    """The channel of this name; ValueError when kobliat has none."""
    found = CHANNELS.get(name)
    if found is None:
        raise ValueError(f"no channel {name!r}")
    return found
