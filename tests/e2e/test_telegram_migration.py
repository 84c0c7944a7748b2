"""A Telegram group that becomes a supergroup keeps its conversation under the new chat id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kobliat.channels.samples import telegram as tg
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, inbox
from tests.builders import events_of
from tests.e2e.webhooks import Webhooks, message_by_external_id, webhooks_for

OLD, NEW = tg.GROUP_ID, tg.SUPERGROUP_ID


def post(hooks: Webhooks, body: bytes) -> None:
    response = hooks.telegram(body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"


def migrate_from_notice(*, update_id: int) -> bytes:
    """The service message that opens the supergroup, naming the group it came from."""
    chat = tg.group_chat(chat_id=NEW, title="Clinic B — front desk", kind="supergroup")
    obj = tg.message(chat=chat, message_id=1, migrate_from_chat_id=OLD)
    return tg.update("message", obj, update_id=update_id)


def group_conversations(db: Database) -> list[dict[str, Any]]:
    with db.reading() as conn:
        rows = conn.execute(select(conversations).where(conversations.c.type == "group"))
        return [dict(row._mapping) for row in rows]


def moves(db: Database) -> list[dict[str, Any]]:
    updated = events_of(db, "conversation.updated")
    return [e["data"]["changes"] for e in updated if "external_id" in e["data"]["changes"]]


def test_group_conversation_follows_its_migration_to_a_supergroup(db: Database) -> None:
    hooks = webhooks_for(db)
    post(hooks, tg.group_photo(update_id=1, chat_id=OLD))
    (before,) = group_conversations(db)

    post(hooks, tg.migrate_to_supergroup(update_id=2, chat_id=OLD, new_chat_id=NEW))
    post(hooks, tg.supergroup_text(update_id=3, chat_id=NEW))

    (after,) = group_conversations(db)
    assert after["id"] == before["id"]
    assert (after["external_id"], after["conversation_key"]) == (
        str(NEW),
        f"group:telegram:{NEW}",
    )
    later = message_by_external_id(db, f"{NEW}:90212")
    assert later["conversation_id"] == before["id"]
    assert moves(db) == [
        {
            "external_id": {"from": str(OLD), "to": str(NEW)},
            "conversation_key": {"from": f"group:telegram:{OLD}", "to": f"group:telegram:{NEW}"},
        }
    ]


def test_both_migration_notices_move_the_conversation_once_in_either_order(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    post(hooks, tg.group_photo(update_id=1, chat_id=OLD))

    post(hooks, migrate_from_notice(update_id=2))
    post(hooks, tg.migrate_to_supergroup(update_id=3, chat_id=OLD, new_chat_id=NEW))

    (moved,) = group_conversations(db)
    assert moved["external_id"] == str(NEW)
    assert len(moves(db)) == 1


def test_migration_of_a_group_never_seen_changes_nothing(db: Database) -> None:
    hooks = webhooks_for(db)

    post(hooks, tg.migrate_to_supergroup(update_id=1, chat_id=OLD, new_chat_id=NEW))

    assert group_conversations(db) == []
    with db.reading() as conn:
        assert conn.execute(select(inbox.c.processed_at)).scalar_one() is not None


def test_migration_leaves_both_when_the_supergroup_has_a_conversation_already(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    post(hooks, tg.group_photo(update_id=1, chat_id=OLD))
    post(hooks, tg.supergroup_text(update_id=2, chat_id=NEW))

    post(hooks, tg.migrate_to_supergroup(update_id=3, chat_id=OLD, new_chat_id=NEW))

    assert sorted(c["external_id"] for c in group_conversations(db)) == sorted([str(OLD), str(NEW)])
    assert moves(db) == []
