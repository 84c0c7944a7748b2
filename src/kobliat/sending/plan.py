"""Deciding, when a reply is posted, whether and how kobliat sends it: the provider, the
business endpoint it leaves from, the recipient, and what the channel refuses (422/409)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from kobliat.conversations import service as conversations
from kobliat.conversations.model import Conversation
from kobliat.customers import service as customers
from kobliat.customers.model import Customer
from kobliat.errors import InvalidInput, RuleViolation
from kobliat.messages import service as messages
from kobliat.messages.model import Message
from kobliat.sending.model import PROVIDERS, SERVICE_WINDOW, Provider, Route, check_content
from kobliat.settings import Settings

# The customer identities each provider can address (generic: any).
_RECIPIENT_TYPES: dict[str, frozenset[str]] = {
    "whatsapp": frozenset({"whatsapp"}),
    "telegram": frozenset({"telegram"}),
    "twilio": frozenset({"sms", "whatsapp"}),
}


def configured(settings: Settings) -> frozenset[Provider]:
    """The providers whose sending credentials are set."""
    from kobliat.channels import registry

    return frozenset(p for p in PROVIDERS if registry.get(p).can_send(settings))


def bot_id(settings: Settings) -> str:
    """The Telegram bot's user id: the part of its token before the colon."""
    if settings.telegram_bot_token is None:
        return settings.telegram_bot_id
    return settings.telegram_bot_token.get_secret_value().split(":", 1)[0]


def route_for(
    conn: Connection, message: Message, settings: Settings, *, now: datetime
) -> Route | None:
    """The route of an outbound message, or None when kobliat does not send it (the channel's
    sending is not configured, or the message was sent elsewhere and carries its provider id).

    Raises InvalidInput (422) for what the channel cannot deliver and RuleViolation (409) for
    free-form WhatsApp text outside the customer service window.
    """
    if message.external_message_id is not None:
        return None
    conversation = conversations.get(conn, message.conversation_id)
    members = customers.get_many(conn, [p.customer_id for p in conversation.participants])
    provider = _provider(conversation, list(members.values()), configured(settings))
    if provider is None:
        return None
    if conversation.type == "multi":
        raise InvalidInput(
            f"{provider} cannot deliver to a multi conversation (one message to several "
            "people); post to each direct conversation",
            code="conversation-not-sendable",
        )
    check_content(provider, message.content_type, message.body, message.metadata)
    reply_to = _reply_target(conn, message, provider)
    if conversation.type == "group":
        return _group_route(provider, conversation, members, settings, reply_to)
    customer, business = _direct_parties(conn, conversation, members, provider, settings)
    if conversation.channel == "whatsapp" and message.content_type != "template":
        _check_window(conn, conversation.id, now)
    return _direct_route(provider, customer, business, settings, reply_to)


def _provider(
    conversation: Conversation, members: list[Customer], available: frozenset[Provider]
) -> Provider | None:
    channel = conversation.channel
    wanted: Provider | None = None
    if channel == "whatsapp":
        via_twilio = any("account_sid" in c.metadata for c in members)
        wanted = "twilio" if via_twilio else "whatsapp"
    elif channel == "sms":
        wanted = "twilio"
    elif channel in ("telegram", "generic"):
        wanted = channel  # type: ignore[assignment]
    return wanted if wanted in available else None


def _is_business(customer: Customer, provider: Provider, settings: Settings) -> bool:
    metadata = customer.metadata
    if provider == "whatsapp":
        return "phone_number_id" in metadata
    if provider == "twilio":
        return "account_sid" in metadata or "messaging_service_sid" in metadata
    if provider == "telegram":
        return customer.external_type == "telegram" and customer.external_id == bot_id(settings)
    return False


def _direct_parties(
    conn: Connection,
    conversation: Conversation,
    members: dict[UUID, Customer],
    provider: Provider,
    settings: Settings,
) -> tuple[Customer, Customer | None]:
    """(the customer written to, the business endpoint's customer when known)."""
    last = messages.latest_inbound(conn, conversation.id)
    if last is not None and last.sender_customer_id in members:
        customer = members[last.sender_customer_id]
    else:
        kinds = _RECIPIENT_TYPES.get(provider)
        candidates = [
            c
            for c in members.values()
            if not _is_business(c, provider, settings)
            and (kinds is None or c.external_type in kinds)
        ]
        if len(candidates) != 1:
            raise InvalidInput(
                "cannot tell which participant to send to: the customer has not written in "
                "this conversation and the business endpoint is not among its participants",
                code="recipient-unknown",
            )
        customer = candidates[0]
    others = [c for c in members.values() if c.id != customer.id]
    return customer, (others[0] if others else None)


def _check_window(conn: Connection, conversation_id: UUID, now: datetime) -> None:
    last = messages.latest_inbound(conn, conversation_id)
    if last is None or now - last.sent_at > SERVICE_WINDOW:
        since = (
            "has never written"
            if last is None
            else f"last wrote at {last.sent_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        raise RuleViolation(
            "WhatsApp's 24-hour customer service window is closed (the customer "
            f'{since}): only a template message (content_type "template") can be sent',
            code="whatsapp-window-closed",
        )


def _reply_target(conn: Connection, message: Message, provider: Provider) -> str | None:
    target_id = message.metadata.get("reply_to_message_id")
    if target_id is None:
        return None
    try:
        target = messages.get(conn, UUID(str(target_id)))
    except ValueError as exc:
        raise InvalidInput(
            "metadata.reply_to_message_id must be a message id", code="reply-target-invalid"
        ) from exc
    if target.conversation_id != message.conversation_id or target.external_message_id is None:
        raise InvalidInput(
            "metadata.reply_to_message_id must name a message of this conversation that the "
            "provider knows (it has an external_message_id)",
            code="reply-target-invalid",
        )
    if provider == "twilio":
        raise InvalidInput(
            "Twilio has no reply context; leave out reply_to_message_id", code="reply-not-sendable"
        )
    return target.external_message_id


def _direct_route(
    provider: Provider,
    customer: Customer,
    business: Customer | None,
    settings: Settings,
    reply_to: str | None,
) -> Route:
    if provider == "whatsapp":
        number_id = (business.metadata.get("phone_number_id") if business else None) or (
            settings.whatsapp_phone_number_id
        )
        if not number_id:
            raise InvalidInput(
                "no WhatsApp number to send from: set KOBLIAT_WHATSAPP_PHONE_NUMBER_ID",
                code="sender-unknown",
            )
        to = customer.metadata.get("wa_id") or customer.external_id.lstrip("+")
        return Route("whatsapp", str(number_id), str(to), reply_to=reply_to)
    if provider == "telegram":
        return Route("telegram", bot_id(settings), customer.external_id, reply_to=reply_to)
    if provider == "twilio":
        if business is None:
            raise InvalidInput(
                "no Twilio number to send from in this conversation", code="sender-unknown"
            )
        return Route("twilio", _twilio_address(business), _twilio_address(customer))
    parties = {"from": _generic_party(business), "to": _generic_party(customer)}
    return Route(
        "generic", parties["from"]["id"], customer.external_id, reply_to=reply_to, parties=parties
    )


def _group_route(
    provider: Provider,
    conversation: Conversation,
    members: dict[UUID, Customer],
    settings: Settings,
    reply_to: str | None,
) -> Route:
    if provider == "twilio" or not conversation.external_id:
        raise InvalidInput(
            f"{provider} cannot deliver to this group conversation",
            code="conversation-not-sendable",
        )
    group = conversation.external_id
    if provider == "telegram":
        return Route("telegram", bot_id(settings), group, group=True, reply_to=reply_to)
    business = next((c for c in members.values() if _is_business(c, provider, settings)), None)
    if provider == "whatsapp":
        number_id = (business.metadata.get("phone_number_id") if business else None) or (
            settings.whatsapp_phone_number_id
        )
        if not number_id:
            raise InvalidInput("no WhatsApp number to send from", code="sender-unknown")
        return Route("whatsapp", str(number_id), group, group=True, reply_to=reply_to)
    parties: dict[str, Any] = {"conversation": {"type": "group", "id": group}}
    return Route("generic", "", group, group=True, reply_to=reply_to, parties=parties)


def _twilio_address(customer: Customer) -> str:
    if customer.external_type in ("whatsapp", "whatsapp_bsuid"):
        return f"whatsapp:{customer.external_id}"
    return customer.external_id


def _generic_party(customer: Customer | None) -> dict[str, Any]:
    if customer is None:
        raise InvalidInput(
            "no business endpoint to send from in this conversation", code="sender-unknown"
        )
    return {"type": customer.external_type, "id": customer.external_id}
