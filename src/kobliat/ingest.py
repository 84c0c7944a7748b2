"""The inbound flow: neutral channel records → customers → conversation → message.

Runs inside the caller's unit of work (the webhook's inbox transaction, or the inbox worker's),
so a delivery's customers, conversation, messages and events commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from kobliat.channels.records import (
    IgnoredItem,
    InboundItem,
    InboundMessage,
    ParsedWebhook,
    Party,
    StatusUpdate,
    refuse_unstorable,
    storable,
)
from kobliat.conversations import service as conversations
from kobliat.conversations.model import Conversation
from kobliat.customers import service as customers
from kobliat.customers.model import Customer
from kobliat.db import dialect
from kobliat.db.uow import UnitOfWork
from kobliat.errors import DomainError
from kobliat.messages import service as messages

log = structlog.get_logger(__name__)
Received = Literal["stored", "duplicate", "ignored"]


@dataclass(slots=True)
class Outcome:
    """What one delivery changed, for the webhook's answer and the metrics."""

    messages: int = 0
    duplicates: int = 0
    statuses: int = 0
    pending_statuses: int = 0
    ignored: int = 0
    # Items a domain rule refused (only when processed item by item): what and why.
    failures: list[str] = field(default_factory=list)


def process(
    uow: UnitOfWork,
    parsed: ParsedWebhook,
    *,
    isolate: bool = False,
    refused: Callable[[BaseException], bool] | None = None,
) -> Outcome:
    """Apply every item of a verified, parsed delivery, in payload order.

    With `isolate`, each item runs in a savepoint: an item refused for good (`refused`, by
    default `is_refusal`) is undone and listed in `failures` while the others are applied. The
    hot path does without the savepoints; a delivery gets this second pass only after it
    failed as a whole.
    """
    refused = refused or is_refusal
    outcome = Outcome()
    for item in storable(parsed).items:
        if not isolate:
            _apply(uow, item, outcome)
            continue
        try:
            with uow.savepoint():
                _apply(uow, item, outcome)
        except Exception as exc:
            if not refused(exc):
                raise
            outcome.failures.append(f"{_label(item)}: {_reason(exc)}")
    return outcome


def is_refusal(exc: BaseException) -> bool:
    """Whether an item failed for good: a domain rule refused it, or it carries data no backend
    takes. Anything else (the database away, a deadlock, a bug) is worth trying again."""
    return isinstance(exc, DomainError | RecursionError) or dialect.is_bad_data(exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return f"{type(exc).__name__}({exc.code}): {exc}"
    # A database error's first line says what; the next ones quote the SQL and its values.
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}"


def _apply(uow: UnitOfWork, item: InboundItem, outcome: Outcome) -> None:
    refuse_unstorable(item)
    if isinstance(item, InboundMessage):
        received = receive_message(uow, item)
        if received == "stored":
            outcome.messages += 1
        elif received == "duplicate":
            outcome.duplicates += 1
        else:
            outcome.ignored += 1
    elif isinstance(item, StatusUpdate):
        if receive_status(uow, item):
            outcome.statuses += 1
        else:
            outcome.pending_statuses += 1
    else:
        _apply_notice(uow, item)
        outcome.ignored += 1


def _label(item: InboundItem) -> str:
    if isinstance(item, InboundMessage):
        return f"message {item.external_message_id}"
    if isinstance(item, StatusUpdate):
        return f"status {item.status} of {item.external_message_id}"
    return item.kind


def receive_message(uow: UnitOfWork, record: InboundMessage) -> Received:
    """Store one message, recognise it as stored already, or ignore it (no other party)."""
    # Checked first, so a provider retrying an old message never re-opens a closed
    # conversation or touches customers again.
    if _stored_already(uow, record):
        return "duplicate"
    sender = resolve_customer(uow, record.sender)
    business = resolve_customer(uow, record.business)
    conversation = resolve_conversation(uow, record, sender=sender, business=business)
    if conversation is None:
        log.warning(
            "message from the business endpoint to itself ignored: no other party",
            channel=record.channel,
            external_message_id=record.external_message_id,
        )
        return "ignored"
    _, created = messages.record_inbound(
        uow,
        conversation_id=conversation.id,
        sender_customer_id=sender.id,
        # The business endpoint writing (an echo of what it sent elsewhere) is outbound.
        direction="outbound" if sender.id == business.id else "inbound",
        channel=record.channel,
        external_message_id=record.external_message_id,
        content_type=record.content_type,
        body=record.body,
        sent_at=record.sent_at,
        metadata=_linked(uow, record),
    )
    return "stored" if created else "duplicate"


def _stored_already(uow: UnitOfWork, record: InboundMessage) -> bool:
    """Whether the message is stored; an edit of a stored message is kept with it."""
    if not messages.is_stored(
        uow.connection, channel=record.channel, external_message_id=record.external_message_id
    ):
        return False
    if record.metadata.get("edited"):
        messages.record_edit(
            uow,
            channel=record.channel,
            external_message_id=record.external_message_id,
            content_type=record.content_type,
            body=record.body,
            edited_at=record.metadata.get("edited_at"),
        )
    return True


def receive_status(uow: UnitOfWork, record: StatusUpdate) -> bool:
    """Apply a delivery status (True), or keep it until its message appears (False)."""
    applied = messages.apply_status(
        uow,
        channel=record.channel,
        external_message_id=record.external_message_id,
        status=record.status,
        at=record.occurred_at,
        error=record.error,
    )
    if applied is not None:
        return True
    messages.keep_pending_status(
        uow,
        channel=record.channel,
        external_message_id=record.external_message_id,
        status=record.status,
        at=record.occurred_at,
        error=record.error,
        metadata=record.metadata,
    )
    return False


def resolve_customer(uow: UnitOfWork, party: Party) -> Customer:
    """The customer for a party, created if new; a changed profile name or metadata is applied.

    Read first without a lock: the common case (a known customer whose profile has not
    changed) then costs one SELECT and never serialises concurrent webhooks on the row.
    """
    metadata = party.metadata or None
    known = customers.lookup(
        uow.connection, external_type=party.external_type, external_id=party.external_id
    )
    if known is not None:
        _, change = known.updated(name=party.name, metadata=metadata, now=known.updated_at)
        if change is None:
            return known
    customer, _ = customers.find_or_create(
        uow,
        external_type=party.external_type,
        external_id=party.external_id,
        name=party.name,
        metadata=metadata,
        update_profile=True,
    )
    return customer


def resolve_conversation(
    uow: UnitOfWork, record: InboundMessage, *, sender: Customer, business: Customer
) -> Conversation | None:
    """The open conversation the message belongs to, opened if there is none.

    None when the business endpoint wrote to itself (Twilio with From == To, a WhatsApp
    number messaging itself): a direct or multi conversation needs a second party.
    """
    ref = record.conversation
    if ref.kind == "group" and ref.external_id:
        return _group(uow, record, sender=sender, business=business)
    if ref.kind == "multi":
        others = [resolve_customer(uow, party) for party in ref.other_parties]
        ids = list(dict.fromkeys([sender.id, business.id, *(o.id for o in others)]))
        if len(ids) < 2:
            return None
        conversation, _ = conversations.find_or_open(
            uow,
            type="multi",
            channel=record.channel,
            participants=[(cid, None) for cid in ids],
            external_id=ref.external_id,
        )
        return conversation
    # Direct (also a group without an id, which could never be found again by its key).
    if sender.id == business.id:
        return None
    conversation, _ = conversations.find_or_open(
        uow,
        type="direct",
        channel=record.channel,
        participants=[(sender.id, None), (business.id, None)],
    )
    return conversation


def _group(
    uow: UnitOfWork, record: InboundMessage, *, sender: Customer, business: Customer
) -> Conversation:
    ref = record.conversation
    members = list(dict.fromkeys([business.id, sender.id]))
    conversation, opened = conversations.find_or_open(
        uow,
        type="group",
        channel=record.channel,
        participants=[(cid, "member") for cid in members],
        external_id=ref.external_id,
        # A group requires a name; not every payload carries one (WhatsApp's does not).
        group_name=ref.group_name or f"{record.channel} group {ref.external_id}",
        group_avatar=ref.group_avatar,
    )
    if not opened:
        conversation = _refresh_group_details(uow, conversation, record)
        conversations.ensure_participant(uow, conversation, sender.id)
    for party in record.conversation.other_parties:
        other = resolve_customer(uow, party)
        conversations.ensure_participant(uow, conversation, other.id)
    return conversation


def _refresh_group_details(
    uow: UnitOfWork, conversation: Conversation, record: InboundMessage
) -> Conversation:
    """Apply a group name or avatar the payload carries when it differs (a renamed group)."""
    ref = record.conversation
    name = ref.group_name if ref.group_name and ref.group_name != conversation.group_name else None
    avatar = (
        ref.group_avatar
        if ref.group_avatar and ref.group_avatar != conversation.group_avatar
        else None
    )
    if name is None and avatar is None:
        return conversation
    return conversations.update(uow, conversation.id, group_name=name, group_avatar=avatar)


def _linked(uow: UnitOfWork, record: InboundMessage) -> dict[str, Any]:
    """The message metadata, with reply and reaction targets resolved to stored message ids."""
    metadata = dict(record.metadata)
    for key, id_field in (("reply_to", "external_message_id"), ("reaction", "message_id")):
        target = metadata.get(key)
        if not isinstance(target, dict) or not isinstance(target.get(id_field), str):
            continue
        found = messages.find_by_external_id(
            uow.connection, channel=record.channel, external_message_id=target[id_field]
        )
        if found is not None:
            metadata[key] = {**target, "stored_message_id": str(found.id)}
    return metadata


def _apply_notice(uow: UnitOfWork, item: IgnoredItem) -> None:
    """Act on the notices that change a conversation; the others are only kept in the inbox."""
    if item.kind == "telegram.migrate":
        _move_telegram_group(uow, item)
        return
    log.debug("webhook item ignored", channel=item.channel, kind=item.kind)


def _move_telegram_group(uow: UnitOfWork, item: IgnoredItem) -> None:
    # A group that becomes a supergroup gets a new chat id. Telegram tells both chats: the old
    # one (migrate_to_chat_id) and the new one (migrate_from_chat_id); the first to arrive moves
    # the conversation, the second finds nothing left under the old id.
    chat_id = item.detail.get("chat_id")
    to_id, from_id = item.detail.get("migrate_to_chat_id"), item.detail.get("migrate_from_chat_id")
    old, new = (chat_id, to_id) if to_id is not None else (from_id, chat_id)
    if old is None or new is None or old == new:
        return
    moved = conversations.move_group(
        uow, channel=item.channel, old_external_id=str(old), new_external_id=str(new)
    )
    log.info("telegram group moved", old_chat_id=old, new_chat_id=new, moved=moved is not None)
