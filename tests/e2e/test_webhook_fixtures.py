"""Every channel fixture, posted over HTTP, ends up stored exactly as its records say."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from kobliat.channels.records import InboundMessage, ParsedWebhook, StatusUpdate
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, inbox, pending_statuses
from kobliat.db.types import utcnow
from kobliat.inbox import service as inbox_service
from kobliat.inbox.model import Delivery
from tests.builders import count, events_of
from tests.e2e.webhooks import (
    all_fixtures,
    fixture,
    message_by_external_id,
    settings_for,
    webhooks_for,
)

# DESIGN §2's mapping, spelled out for the types it names.
SPEC_CONTENT_TYPES = {
    ("whatsapp", "text"): "text",
    ("whatsapp", "image"): "image",
    ("whatsapp", "document"): "file",
    ("whatsapp", "sticker"): "image",
    ("whatsapp", "audio_voice"): "audio",
    ("whatsapp", "video"): "video",
    ("whatsapp", "location"): "location",
    ("whatsapp", "contacts"): "contacts",
    ("whatsapp", "button"): "interactive",
    ("whatsapp", "button_reply"): "interactive",
    ("whatsapp", "list_reply"): "interactive",
    ("whatsapp", "reaction"): "reaction",
    ("whatsapp", "unsupported"): "unknown",
    ("whatsapp", "unknown_type"): "unknown",
    ("telegram", "group_photo"): "image",
    ("telegram", "document"): "file",
    ("telegram", "location"): "location",
    ("telegram", "contact"): "contacts",
    ("telegram", "callback_query"): "interactive",
    ("twilio", "sms"): "text",
    ("twilio", "mms"): "image",
    ("twilio", "whatsapp_location"): "location",
    ("twilio", "whatsapp_button"): "interactive",
    ("generic", "message"): "text",
}


def expected_records(db: Database, channel: str, body: bytes) -> ParsedWebhook:
    """What the channel adapter reads from the fixture (signature headers are irrelevant)."""
    headers = {"webhook-id": "fixture"}
    delivery = Delivery(channel, body, headers, utcnow())
    return inbox_service.parse(delivery, settings_for(db))


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def conversation_type(db: Database, conversation_id: Any) -> str:
    with db.reading() as conn:
        stmt = select(conversations.c.type).where(conversations.c.id == conversation_id)
        return str(conn.execute(stmt).scalar_one())


@pytest.mark.parametrize(("channel", "name"), list(all_fixtures()))
def test_fixture_posted_over_http_is_stored_as_its_records_say(
    db: Database, channel: str, name: str
) -> None:
    body = fixture(channel, name)
    parsed = expected_records(db, channel, body)
    before = utcnow() - timedelta(seconds=1)

    response = webhooks_for(db).post(channel, body)

    assert response.status_code == 200, response.text
    assert count(db, inbox) == 1
    inbound = [item for item in parsed.items if isinstance(item, InboundMessage)]
    statuses = [item for item in parsed.items if isinstance(item, StatusUpdate)]
    for record in inbound:
        row = message_by_external_id(db, record.external_message_id)
        assert row["channel"] == record.channel
        assert row["direction"] == "inbound"
        assert row["content_type"] == record.content_type
        assert row["body"] == record.body
        assert row["metadata"] == as_json(record.metadata)
        if channel == "twilio" or name == "callback_query":
            assert row["sent_at"] >= before  # the provider sends no time: arrival time
        else:
            assert row["sent_at"] == record.sent_at
        expected_kind = record.conversation.kind if record.conversation.external_id else "direct"
        if record.conversation.kind == "multi":
            expected_kind = "multi"
        assert conversation_type(db, row["conversation_id"]) == expected_kind
    assert len(events_of(db, "message.inbound.created")) == len(inbound)
    # No outbound message exists in a fresh database: every status waits for its message.
    assert count(db, pending_statuses) == len({(s.external_message_id, s.status) for s in statuses})


@pytest.mark.parametrize(("channel", "name"), sorted(SPEC_CONTENT_TYPES))
def test_message_types_map_to_the_designed_content_type(
    db: Database, channel: str, name: str
) -> None:
    body = fixture(channel, name)
    (record,) = [
        i for i in expected_records(db, channel, body).items if isinstance(i, InboundMessage)
    ]

    assert webhooks_for(db).post(channel, body).status_code == 200

    row = message_by_external_id(db, record.external_message_id)
    assert row["content_type"] == SPEC_CONTENT_TYPES[(channel, name)]
