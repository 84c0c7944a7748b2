"""Realistic bodies in kobliat's generic JSON format (see channels/GENERIC.md).

Every builder is deterministic given its arguments and returns the raw body bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kobliat.channels.samples._json import dump

MESSAGE_ID = "msg_01JH4X9K2M7Q8R3S5T6V"
TIMESTAMP = 1767261845
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Obj = dict[str, Any]


def party(kind: str, party_id: str, name: str | None = None) -> Obj:
    """A `from`/`to`/participant object."""
    obj: Obj = {"type": kind, "id": party_id}
    if name is not None:
        obj["name"] = name
    return obj


def message_obj(
    *,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    sender: Obj | None = None,
    to: Obj | None = None,
    conversation: Obj | None = None,
    content_type: str = "text",
    body: str | None = "Hello, I'd like to book a cleaning.",
    metadata: Obj | None = None,
) -> Obj:
    """One message object of the generic format."""
    obj: Obj = {
        "id": message_id,
        "timestamp": datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z"),
        "from": sender or party("email", "ana.souza@example.com", "Ana Souza"),
        "to": to or party("email", "support@clinic-b.example.com"),
    }
    if conversation is not None:
        obj["conversation"] = conversation
    obj["content_type"] = content_type
    obj["body"] = body
    if metadata is not None:
        obj["metadata"] = metadata
    return obj


def message(**kwargs: Any) -> bytes:
    """A single message body; keyword arguments as for `message_obj`."""
    return dump(message_obj(**kwargs))


def group_message(
    *,
    message_id: str = "msg_01JH4X9K2M7Q8R3S5T6W",
    group_id: str = "team-frontdesk",
    name: str = "Front desk",
    body: str = "Who is covering Saturday?",
) -> bytes:
    """A message in a named group with an avatar."""
    conversation = {
        "type": "group",
        "id": group_id,
        "name": name,
        "avatar": "https://cdn.example.com/groups/frontdesk.png",
    }
    return dump(message_obj(message_id=message_id, conversation=conversation, body=body))


def multi_message(*, message_id: str = "msg_01JH4X9K2M7Q8R3S5T6X") -> bytes:
    """A message in an ad-hoc thread with two other people, with an image attachment."""
    conversation = {
        "type": "multi",
        "id": "thread-8812",
        "participants": [
            party("email", "bruno@example.com", "Bruno"),
            party("phone", "+4915112345678", "Carla"),
        ],
    }
    metadata = {"attachments": [{"url": "https://cdn.example.com/a/plan.png", "mime": "image/png"}]}
    return dump(
        message_obj(
            message_id=message_id,
            conversation=conversation,
            content_type="image",
            body="Here is the plan",
            metadata=metadata,
        )
    )


def status_obj(
    *,
    message_id: str = "out_01JH4XB0A1B2C3D4E5F6",
    status: str = "delivered",
    timestamp: int = TIMESTAMP + 5,
    error: Obj | None = None,
) -> Obj:
    """One status object of the generic format."""
    obj: Obj = {"message_id": message_id, "status": status, "timestamp": timestamp}
    if error is not None:
        obj["error"] = error
    return obj


def status(**kwargs: Any) -> bytes:
    """A single status body; keyword arguments as for `status_obj`."""
    return dump({"status": status_obj(**kwargs)})


def batch() -> bytes:
    """Two messages and a failed status in one delivery."""
    messages = [
        message_obj(message_id="msg_batch_1", body="first"),
        message_obj(message_id="msg_batch_2", timestamp=TIMESTAMP + 1, body="second"),
    ]
    statuses = [
        status_obj(
            message_id="out_batch_1",
            status="failed",
            error={"code": "mailbox_full", "message": "Recipient mailbox is full"},
        )
    ]
    return dump({"messages": messages, "statuses": statuses})
