"""Channel adapters: verify a webhook's signature and parse it into neutral records."""

from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import (
    ConversationRef,
    IgnoredItem,
    InboundItem,
    InboundMessage,
    ParsedWebhook,
    Party,
    PayloadError,
    StatusUpdate,
)

__all__ = [
    "ConversationRef",
    "IgnoredItem",
    "InboundItem",
    "InboundMessage",
    "ParsedWebhook",
    "Party",
    "PayloadError",
    "StatusUpdate",
    "generic",
    "telegram",
    "twilio",
    "whatsapp",
]
