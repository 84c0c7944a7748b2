"""WhatsApp Cloud API webhook envelopes, statuses and batches (invented ids, deterministic).

The per-type message builders are in `whatsapp_messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kobliat.channels.samples._json import dump

WA_ID = "447911123456"
NAME = "Priya Natarajan"
DISPLAY_PHONE_NUMBER = "12025550143"
PHONE_NUMBER_ID = "301234567890123"
WABA_ID = "209876543210987"
TIMESTAMP = 1767261845
MESSAGE_ID = "wamid.HBgMNDQ3OTExMTIzNDU2FQIAEhgUM0VCMDRBNkI1QjM1RkU2QTQxMDAA"
OUR_MESSAGE_ID = "wamid.HBgMNDQ3OTExMTIzNDU2FQIAERgSQjg0RjA1QTNBRjg5QzhDNkIxAA=="
BSUID = "GB.8841203957716620"
GROUP_ID = "Y2FwaV9ncm91cDoxMjAyNTU1MDE0MzoxMjAzNjM0MTg4Nzc2NjU1NDQ="
# wa_id spellings the customer service must match to one person (channels.md §1.10).
BR_WA_ID_WITH_NINTH_DIGIT = "5511987654321"
BR_WA_ID_WITHOUT_NINTH_DIGIT = "551187654321"
MX_WA_ID_WITH_1 = "5215512345678"
MX_WA_ID_WITHOUT_1 = "525512345678"

Item = dict[str, Any]


def envelope(entries: list[Item]) -> bytes:
    """A complete webhook body from `entry[]` items."""
    return dump({"object": "whatsapp_business_account", "entry": entries})


def entry(changes: list[Item], *, waba_id: str = WABA_ID) -> Item:
    """One `entry[]` item (one WhatsApp Business Account)."""
    return {"id": waba_id, "changes": changes}


def messages_change(
    *,
    messages: Sequence[Item] = (),
    statuses: Sequence[Item] = (),
    contacts: Sequence[Item] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
    display_phone_number: str = DISPLAY_PHONE_NUMBER,
) -> Item:
    """One `changes[]` item of field `messages`."""
    value: Item = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    for key, items in (("contacts", contacts), ("messages", messages), ("statuses", statuses)):
        if items:
            value[key] = list(items)
    return {"field": "messages", "value": value}


def contact(*, wa_id: str | None = WA_ID, name: str = NAME, user_id: str | None = None) -> Item:
    """A `contacts[]` item describing a sender."""
    item: Item = {"profile": {"name": name}}
    if wa_id is not None:
        item["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = user_id
    return item


def message_item(
    kind: str,
    content: Any,
    *,
    wa_id: str = WA_ID,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    context: Item | None = None,
    **extra: Any,
) -> Item:
    """A `messages[]` item of type `kind` whose type object is `content`."""
    item: Item = {"from": wa_id, "id": message_id, "timestamp": str(timestamp)}
    if context is not None:
        item["context"] = context
    item.update(extra)
    item["type"] = kind
    if content is not None:
        item[kind] = content
    return item


def single(item: Item, *, wa_id: str = WA_ID, name: str = NAME) -> bytes:
    """A body carrying one message item and its sender's contact."""
    change = messages_change(messages=[item], contacts=[contact(wa_id=wa_id, name=name)])
    return envelope([entry([change])])


def status_item(
    *,
    message_id: str = OUR_MESSAGE_ID,
    status: str = "delivered",
    timestamp: int = TIMESTAMP,
    recipient_id: str = WA_ID,
    error_code: int | None = None,
) -> Item:
    """A `statuses[]` item for a message we sent; failed ones carry `errors`."""
    item: Item = {
        "id": message_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if status in ("sent", "delivered"):
        item["conversation"] = {
            "id": "8d1b1e3f0c2a4e5b9f6a7c8d9e0f1a2b",
            "origin": {"type": "service"},
        }
        item["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service"}
    if error_code is not None:
        item["errors"] = [
            {
                "code": error_code,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {
                    "details": "More than 24 hours have passed since the customer last replied."
                },
            }
        ]
    return item


def status(
    *,
    message_id: str = OUR_MESSAGE_ID,
    status: str = "delivered",
    timestamp: int = TIMESTAMP,
    recipient_id: str = WA_ID,
    error_code: int | None = None,
) -> bytes:
    """A body carrying one delivery status."""
    item = status_item(
        message_id=message_id,
        status=status,
        timestamp=timestamp,
        recipient_id=recipient_id,
        error_code=error_code,
    )
    return envelope([entry([messages_change(statuses=[item])])])


def batch() -> bytes:
    """Two WABAs in one delivery, each with messages from two senders and statuses (§1.7)."""
    second_entry = entry([_second_batch_change()], waba_id="209876543210999")
    return envelope([entry([_first_batch_change()]), second_entry])


def _first_batch_change() -> Item:
    image = {
        "id": "1398472210553622",
        "mime_type": "image/jpeg",
        "sha256": "aGVsbG8=",
        "caption": "third",
    }
    return messages_change(
        contacts=[contact(), contact(wa_id=BR_WA_ID_WITH_NINTH_DIGIT, name="Joana Silva")],
        messages=[
            message_item(
                "text", {"body": "first"}, message_id="wamid.batch-1", timestamp=1767261901
            ),
            message_item(
                "text",
                {"body": "Olá"},
                wa_id=BR_WA_ID_WITH_NINTH_DIGIT,
                message_id="wamid.batch-2",
                timestamp=1767261902,
            ),
            message_item("image", image, message_id="wamid.batch-3", timestamp=1767261903),
        ],
        statuses=[status_item(message_id="wamid.ours-1", status="read", timestamp=1767261904)],
    )


def _second_batch_change() -> Item:
    pin = {"latitude": 19.4326, "longitude": -99.1332}
    return messages_change(
        phone_number_id="301234567890999",
        display_phone_number="12025550199",
        contacts=[contact(wa_id=MX_WA_ID_WITH_1, name="Lupita")],
        messages=[
            message_item(
                "text",
                {"body": "hola"},
                wa_id=MX_WA_ID_WITH_1,
                message_id="wamid.batch-4",
                timestamp=1767261905,
            ),
            message_item(
                "location",
                pin,
                wa_id=MX_WA_ID_WITH_1,
                message_id="wamid.batch-5",
                timestamp=1767261906,
            ),
        ],
        statuses=[
            status_item(message_id="wamid.ours-2", status="sent", timestamp=1767261907),
            status_item(message_id="wamid.ours-2", status="delivered", timestamp=1767261908),
        ],
    )


def account_update() -> bytes:
    """A change of another field than `messages` (not a message or status)."""
    change = {
        "field": "account_update",
        "value": {"phone_number": DISPLAY_PHONE_NUMBER, "event": "VERIFIED_ACCOUNT"},
    }
    return envelope([entry([change])])
