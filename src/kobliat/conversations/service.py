"""Conversation use cases. They take a unit of work and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from kobliat.conversations import store
from kobliat.conversations.model import (
    Conversation,
    ConversationType,
    Participant,
    check_role,
    conversation_key,
)
from kobliat.customers import service as customers
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.errors import InvalidInput, NotFound, RuleViolation


def find_or_open(
    uow: UnitOfWork,
    *,
    type: ConversationType,
    channel: str | None,
    participants: Sequence[tuple[UUID, str | None]],
    external_id: str | None = None,
    group_name: str | None = None,
    group_avatar: str | None = None,
    group_metadata: dict[str, Any] | None = None,
) -> tuple[Conversation, bool]:
    """The non-closed conversation for this key, locked until commit, or a new one
    (`conversation.opened`).

    Concurrent callers with the same key end with one conversation: the partial unique index
    on the key lets exactly one INSERT through; the others read the winner's row. The row lock
    keeps a close from committing between this lookup and the caller's message: a close that
    committed first is seen (the locked row no longer matches), and a new conversation opens.
    """
    candidate = Conversation.open(
        type=type,
        channel=channel,
        participants=participants,
        external_id=external_id,
        group_name=group_name,
        group_avatar=group_avatar,
        group_metadata=group_metadata,
        now=utcnow(),
    )
    key = candidate.conversation_key
    # Most messages belong to a conversation that is open already: look before inserting.
    existing = store.find_open_by_key(uow.connection, key, for_update=True) if key else None
    if existing is not None:
        return existing, False
    for _ in range(5):
        if store.insert_if_key_free(uow.connection, candidate):
            uow.emit(candidate.opened_event())
            return candidate, True
        assert key is not None
        existing = store.find_open_by_key(uow.connection, key, for_update=True)
        if existing is not None:
            return existing, False
        # The holder was closed (or re-keyed) between our INSERT and SELECT: try to open again.
    raise RuntimeError(f"could not settle conversation {candidate.conversation_key}")


def open_conversation(
    uow: UnitOfWork,
    *,
    type: ConversationType,
    channel: str | None,
    participants: Sequence[tuple[UUID, str | None]],
    **details: Any,
) -> tuple[Conversation, bool]:
    """Open a conversation through the API: every participant must be a known customer."""
    _require_customers(uow.connection, [cid for cid, _ in participants])
    return find_or_open(uow, type=type, channel=channel, participants=participants, **details)


def ensure_participant(
    uow: UnitOfWork, conversation: Conversation, customer_id: UUID, *, role: str = "member"
) -> bool:
    """Add the customer to a group unless present (`conversation.participant.added`)."""
    if conversation.participant(customer_id) is not None:
        return False
    member = Participant(
        customer_id=customer_id, role=check_role(conversation.type, role), joined_at=utcnow()
    )
    if not store.add_participant_if_absent(uow.connection, conversation.id, member):
        return False
    uow.emit(conversation.participant_added_event(member))
    return True


def add_participant(
    uow: UnitOfWork, conversation_id: UUID, customer_id: UUID, *, role: str | None
) -> Participant:
    """Add a known customer to a conversation, keeping the type's rules."""
    _require_customers(uow.connection, [customer_id])
    current = _locked(uow, conversation_id)
    after, member, event = current.add_participant(customer_id, role=role, now=utcnow())
    _save_new_key(uow, current, after)
    if not store.add_participant_if_absent(uow.connection, conversation_id, member):
        raise RuleViolation(
            f"customer {customer_id} is already a participant", code="participant-exists"
        )
    uow.emit(event)
    return member


def remove_participant(uow: UnitOfWork, conversation_id: UUID, customer_id: UUID) -> None:
    """Remove a participant, keeping the type's rules."""
    current = _locked(uow, conversation_id)
    after, event = current.remove_participant(customer_id, now=utcnow())
    _save_new_key(uow, current, after)
    store.remove_participant(uow.connection, conversation_id, customer_id)
    uow.emit(event)


def _save_new_key(uow: UnitOfWork, before: Conversation, after: Conversation) -> None:
    """Persist a multi conversation's key for its new set of parties, or refuse (409) when
    another non-closed conversation has exactly those parties."""
    if after.conversation_key == before.conversation_key:
        return
    if not store.save_key(uow.connection, after):
        raise RuleViolation(
            "another open conversation has exactly these participants; close it first",
            code="participants-match-another-conversation",
        )


def update(
    uow: UnitOfWork,
    conversation_id: UUID,
    *,
    status: str | None = None,
    group_name: str | None = None,
    group_avatar: str | None = None,
    group_metadata: dict[str, Any] | None = None,
) -> Conversation:
    """Change status and/or group details; a reopen that would give a key two live
    conversations is refused."""
    current = _locked(uow, conversation_id)
    now = utcnow()
    events = []
    if group_name is not None or group_avatar is not None or group_metadata is not None:
        current, event = current.update_group(
            group_name=group_name, group_avatar=group_avatar, group_metadata=group_metadata, now=now
        )
        events.append(event)
    if status is not None:
        current, status_events = current.change_status(status, now=now)
        events.extend(status_events)
    changed = [e for e in events if e is not None]
    if not changed:
        return current
    if not store.save_details(uow.connection, current):
        raise RuleViolation(
            "another conversation with the same participants (or group) is open; "
            "close it before reopening this one",
            code="reopen-conflicts-with-open-conversation",
        )
    uow.emit(*changed)
    return current


def move_group(
    uow: UnitOfWork, *, channel: str, old_external_id: str, new_external_id: str
) -> Conversation | None:
    """Re-key the open group known by `old_external_id` to `new_external_id`
    (`conversation.updated`); None when there is none, or the new id has its own already."""
    old_key = conversation_key("group", channel, [], old_external_id)
    assert old_key is not None
    current = store.find_open_by_key(uow.connection, old_key, for_update=True)
    if current is None:  # moved already (the notice comes twice), closed, or never seen
        return None
    moved, event = current.moved_to(new_external_id, now=utcnow())
    if not store.save_key(uow.connection, moved):
        # The new id's first message opened a conversation before the notice arrived; two
        # conversations cannot share a key, and merging them is an operator's decision.
        return None
    uow.emit(event)
    return moved


def record_message_time(uow: UnitOfWork, conversation_id: UUID, at: datetime) -> None:
    """Move the conversation's last_message_at forward to a message's time."""
    if not store.record_message_time(uow.connection, conversation_id, at):
        raise NotFound(f"no conversation {conversation_id}", code="conversation-not-found")


def open_for_message(uow: UnitOfWork, conversation_id: UUID) -> Conversation:
    """The conversation, locked until commit so that it cannot close under a message being
    written; refused (409) when it is closed already."""
    conversation = _locked(uow, conversation_id)
    if conversation.status == "closed":
        raise RuleViolation(
            "the conversation is closed; reopen it to send", code="conversation-closed"
        )
    return conversation


def get(conn: Connection, conversation_id: UUID) -> Conversation:
    """The conversation with its participants, or NotFound."""
    found = store.get(conn, conversation_id)
    if found is None:
        raise NotFound(f"no conversation {conversation_id}", code="conversation-not-found")
    return found


def lock(uow: UnitOfWork, conversation_id: UUID) -> Conversation:
    """The conversation, its row locked until the unit of work ends (or NotFound): writers
    of one conversation then take their turns, in the order their messages are stamped."""
    return _locked(uow, conversation_id)


def _locked(uow: UnitOfWork, conversation_id: UUID) -> Conversation:
    found = store.get(uow.connection, conversation_id, for_update=True)
    if found is None:
        raise NotFound(f"no conversation {conversation_id}", code="conversation-not-found")
    return found


def _require_customers(conn: Connection, ids: Sequence[UUID]) -> None:
    known = customers.get_many(conn, ids)
    missing = [str(cid) for cid in ids if cid not in known]
    if missing:
        raise InvalidInput(f"unknown customer(s): {', '.join(missing)}", code="unknown-customer")
