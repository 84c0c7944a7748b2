"""Descriptions of the parameters the routes share, applied to the OpenAPI schema in one place.

The same names (`conversation_id`, `limit`, `cursor`, ...) recur across routes with one meaning;
describing them here keeps every operation's documentation complete and worded alike. A route
that describes a parameter itself keeps its own words.
"""

from __future__ import annotations

from typing import Any

PARAMETERS = {
    "customer_id": "a customer's id",
    "conversation_id": "a conversation's id",
    "subscription_id": "a subscription's id",
    "event_type": "an event type, e.g. `conversation.opened`",
    "external_type": "the identity's kind: `whatsapp`, `telegram`, `sms`, `email`, ...",
    "status": "only conversations with this status",
    "type": "only conversations of this type",
    "channel": "only conversations on this channel (`whatsapp`, `telegram`, `sms`, ...)",
    "limit": "page size",
    "cursor": "the `next_cursor` of the previous page (opaque)",
    "idempotency-key": (
        "a key of your choosing: a repeat with the same key and body returns the first "
        "message (200); the same key with another body is a 409"
    ),
    "Last-Event-ID": "resume after this event (the `id:` of the last event received)",
    "hub.mode": "`subscribe` (Meta's verification handshake)",
    "hub.verify_token": "must equal KOBLIAT_WHATSAPP_VERIFY_TOKEN",
    "hub.challenge": "echoed back when the token matches",
}


def describe_parameters(schema: dict[str, Any]) -> None:
    """Give every undescribed parameter of every operation its glossary description."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if not parameter.get("description") and parameter["name"] in PARAMETERS:
                    parameter["description"] = PARAMETERS[parameter["name"]]
