"""The one-round-trip twins of the ingest flow's common cases (PostgreSQL).

A delivery carrying one plain inbound message from a known sender (whose name and metadata
have not changed) into its open direct conversation is most of the traffic. For it, the server
function `kobliat_ingest_direct` (migrations 0007 and 0009) writes, in one round trip, exactly
the rows and the event `kobliat.inbox.service.accept` would: the inbox row, the message (once per
channel and provider id), the forward-only activity times, the conversation's sequence and
feed-order key (as `kobliat.events.outbox.append`), and the outbox row with the same CloudEvents
envelope, built here by the same model code.

When the sender is someone kobliat has never seen (and the business endpoint is known, its
profile unchanged), the function answers 'new-sender' having written nothing, and the caller
sends a second call, `kobliat_ingest_first` (migration 0009), drafted only then by
`first_contact`: it writes what the general flow writes for a first contact, the customer, the
direct conversation with its key and two participants, the inbox row, the message, both new
aggregates' sequences, and the outbox rows customer.created, conversation.opened and
message.inbound.created in that order, with the envelopes the models raise. Two first contacts
of one sender race on the customer's unique identity: the one that finds it stored goes on as a
known sender (or answers 'fallback').

Everything else `prepare` leaves to the general flow, and the functions answer 'fallback'
(having written nothing) when the database disagrees: the caller then runs the general flow.
tests/integration/test_ingest_fast.py holds the paths equal.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson

from kobliat import ingest, jsonlimits
from kobliat.channels.records import InboundMessage, ParsedWebhook, Party, refuse_unstorable
from kobliat.conversations.model import Conversation
from kobliat.customers import service as customers
from kobliat.customers.model import Customer
from kobliat.db.types import utcnow
from kobliat.errors import DomainError
from kobliat.events.envelope import to_cloudevent
from kobliat.inbox.model import Delivery
from kobliat.messages.model import Message

Answer = Literal["stored", "duplicate", "delivery-duplicate", "new-sender", "fallback"]

# The direct function's parameters' SQL types, in order (see FastCall.params).
PARAM_TYPES = (
    *("text", "text", "bytea", "jsonb", "timestamptz", "timestamptz", "text"),
    *("text", "text", "text", "jsonb"),  # the sender
    *("text", "text", "text", "jsonb"),  # the business endpoint
    *("uuid", "text", "text", "text", "jsonb", "timestamptz", "uuid", "jsonb"),  # the message
)
# The first-contact function's: the same, then the new customer and conversation with their
# events (see first_contact).
FIRST_PARAM_TYPES = (*PARAM_TYPES, "uuid", "jsonb", "uuid", "jsonb")


def _single(function: str, kinds: tuple[str, ...]) -> str:
    placeholders = (
        "%s" if kind in ("text", "bytea", "timestamptz", "uuid") else f"%s::{kind}"
        for kind in kinds
    )
    return f"SELECT {function}({', '.join(placeholders)})"


# One call (tests, and a single delivery). Built once; `prepare=True` at execution keeps it a
# server-side prepared statement.
STATEMENT = _single("kobliat_ingest_direct", PARAM_TYPES)
FIRST_CONTACT = _single("kobliat_ingest_first", FIRST_PARAM_TYPES)


def _element(index: int, kind: str) -> str:
    """SQL taking parameter `index` out of one element `e` of a batch document."""
    if kind == "text":
        return f"e->>{index}"
    if kind == "bytea":
        return f"decode(e->>{index}, 'base64')"
    return f"(e->>{index})::{kind}"  # JSON values travel as their text, like single calls


def _arguments(kinds: tuple[str, ...]) -> str:
    return ", ".join(_element(i, kind) for i, kind in enumerate(kinds))


# A whole batch as ONE statement: every delivery's parameters in one JSON array, handed to the
# function element by element in the array's order, answers in the same order. One execute
# and one round trip per batch (a pipeline of single calls costs the client a socket exchange
# per call); and as one statement in autocommit, it is one transaction with no BEGIN/COMMIT.
# An element with the first-contact parameters goes to that function, in its place in the
# batch's (sender) order: CASE evaluates only the function it chooses.
BATCH_STATEMENT = (
    f"SELECT CASE WHEN jsonb_array_length(e) = {len(PARAM_TYPES)}"
    f" THEN kobliat_ingest_direct({_arguments(PARAM_TYPES)})"
    f" ELSE kobliat_ingest_first({_arguments(FIRST_PARAM_TYPES)}) END"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n"
)
# Filled in by the function once it has found the conversation and the sender.
_PLACEHOLDER = UUID(int=0)
# How U+0000 reaches a parsed payload: a JSON escape, or a percent-encoded form field.
_NUL_MARKERS = (b"\\u0000", b"%00", b"\x00")
# Keys whose values the general flow resolves against stored messages, or treats as an edit.
_GENERAL_ONLY = ("edited", "reply_to", "reaction")


@dataclass(frozen=True, slots=True)
class FastCall:
    """One delivery ready for a server function: its parameters and its lock order."""

    params: tuple[Any, ...]
    order: tuple[str, str]  # the sender's identity: writers lock conversations in this order
    # Kept for a first contact's second call: the message, and the moment the general flow
    # would have stamped its rows with.
    record: InboundMessage | None = None
    now: datetime | None = None
    statement: str = STATEMENT  # the call on its own (the writer sends BATCH_STATEMENT)


def prepare(delivery: Delivery, parsed: ParsedWebhook) -> FastCall | None:
    """The fast-path call for a delivery, or None when only the general flow can take it."""
    if any(marker in delivery.body for marker in _NUL_MARKERS):
        return None  # rare: the general flow replaces U+0000 (walking the whole payload)
    if len(parsed.items) != 1 or not isinstance(parsed.items[0], InboundMessage):
        return None
    record = parsed.items[0]
    if record.conversation.kind != "direct" or any(k in record.metadata for k in _GENERAL_ONLY):
        return None
    try:
        if not jsonlimits.plainly_storable(delivery.body):
            refuse_unstorable(record)  # too deep, NaN: the general flow refuses the item alone
        sender = _party(record.sender)
        business = _party(record.business)
        message, envelope = _drafted(record)
        return _call(delivery, parsed, record, sender, business, message, envelope)
    except (DomainError, _Unsupported, TypeError):
        # TypeError: orjson refuses what JSON cannot carry (lone surrogates, runaway depth);
        # the general flow cleans or refuses it, item by item.
        return None


def _call(
    delivery: Delivery,
    parsed: ParsedWebhook,
    record: InboundMessage,
    sender: tuple[str, str, str | None, str | None],
    business: tuple[str, str, str | None, str | None],
    message: Message,
    envelope: dict[str, Any],
) -> FastCall:
    now = message.created_at
    params = (
        delivery.channel,
        parsed.delivery_key,
        delivery.body,
        _json(delivery.headers),
        delivery.received_at,
        now,
        record.channel,
        *sender,
        *business,
        message.id,
        message.external_message_id,
        message.content_type,
        message.body,
        _json(message.metadata),
        message.sent_at,
        UUID(envelope["id"]),
        _json(envelope),
    )
    return FastCall(params=params, order=(sender[0], sender[1]), record=record, now=now)


def first_contact(call: FastCall) -> FastCall:
    """The call of `kobliat_ingest_first` for a delivery `kobliat_ingest_direct` answered
    'new-sender' to: the new customer and conversation, and their events, drafted as the
    general flow does (the business endpoint's id is filled in by the function)."""
    record, now = call.record, call.now
    assert record is not None and now is not None, "only a call made by prepare() has a draft"
    kind, key = call.order
    customer = Customer.register(
        external_type=kind,
        external_id=key,
        name=record.sender.name,
        metadata=record.sender.metadata or None,
        now=now,
    )
    conversation = Conversation.open(
        type="direct",
        channel=record.channel,
        participants=[(customer.id, None), (_PLACEHOLDER, None)],
        now=now,
    )
    drafted = (
        customer.id,
        _json(to_cloudevent(customer.created_event(), sequence=1)),
        conversation.id,
        _json(to_cloudevent(conversation.opened_event(), sequence=1)),
    )
    return FastCall(
        params=(*call.params, *drafted),
        order=call.order,
        record=record,
        now=now,
        statement=FIRST_CONTACT,
    )


def batch_element(call: FastCall) -> bytes | None:
    """A call's parameters as one element of a batch document (JSON), or None when JSON cannot
    carry them (text with a lone surrogate: the general flow cleans it)."""
    values = [
        base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for value in call.params
    ]
    try:
        return orjson.dumps(values)
    except TypeError:
        return None


def receipt_outcome(answer: Answer) -> ingest.Outcome | None:
    """The webhook's outcome for the function's answer; None for a delivery seen before."""
    if answer == "stored":
        return ingest.Outcome(messages=1)
    if answer == "duplicate":
        return ingest.Outcome(duplicates=1)
    return None


class _Unsupported(Exception):
    """A profile change the function's containment test cannot judge exactly."""


def _party(party: Party) -> tuple[str, str, str | None, str | None]:
    """(type, id, name, metadata) as the function compares them with the stored customer."""
    kind, key = customers.canonical_identity(party.external_type, party.external_id)
    metadata = party.metadata or None
    # Merging a patch changes nothing exactly when the stored metadata contains it, unless
    # the patch removes keys (null) or replaces arrays: those go the general way.
    if metadata is not None and not _containment_exact(metadata):
        raise _Unsupported
    return kind, key, party.name, None if metadata is None else _json(metadata)


def _containment_exact(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_containment_exact(v) for v in value.values())
    return value is not None and not isinstance(value, list)


def _drafted(record: InboundMessage) -> tuple[Message, dict[str, Any]]:
    """The message and its envelope as the general flow makes them, minus what the database
    fills in (conversation, sender, sequence)."""
    message = Message.new(
        conversation_id=_PLACEHOLDER,
        direction="inbound",
        channel=record.channel,
        content_type=record.content_type,
        body=record.body,
        sent_at=record.sent_at,
        now=utcnow(),
        sender_customer_id=_PLACEHOLDER,
        external_message_id=record.external_message_id,
        metadata=dict(record.metadata),
        status="received",
    )
    event = message.created_event()
    return message, to_cloudevent(event, sequence=0)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


__all__ = [
    "BATCH_STATEMENT",
    "FIRST_CONTACT",
    "STATEMENT",
    "Answer",
    "FastCall",
    "batch_element",
    "first_contact",
    "prepare",
    "receipt_outcome",
]
