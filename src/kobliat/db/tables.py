"""SQLAlchemy Core tables: the three core tables exactly, plus kobliat's additions.

The migrations in `kobliat/migrations` create these; the test suite checks that the two agree
(and, on PostgreSQL, that the core tables match their reference DDL,
tests/fixtures/seed_schema.sql, to the letter).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from kobliat.db.types import Json, UTCDateTime

metadata = MetaData()

conversation_type = Enum("direct", "multi", "group", name="conversation_type", create_type=False)
conversation_status = Enum(
    "open", "closed", "pending", name="conversation_status", create_type=False
)

# --- Customer context -------------------------------------------------------------------------
customers = Table(
    "customers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("external_id", Text, nullable=False),
    Column("external_type", Text, nullable=False),
    Column("name", Text),
    Column("metadata", Json),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- Conversation context ---------------------------------------------------------------------
conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("type", conversation_type, nullable=False),
    Column("group_name", Text),
    Column("group_avatar", Text),
    Column("group_metadata", Json),
    Column("status", conversation_status, nullable=False),
    Column("last_message_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # additions
    Column("channel", Text),
    Column("external_id", Text),
    Column("conversation_key", Text),
    Column("last_activity_at", UTCDateTime, nullable=False),
)

conversation_participants = Table(
    "conversation_participants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "conversation_id",
        Uuid,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer_id", Uuid, nullable=False),
    Column("role", Text),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("metadata", Json),
)

# --- Message context --------------------------------------------------------------------------
messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("conversation_id", Uuid, nullable=False),
    Column("sender_customer_id", Uuid),
    Column("direction", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("external_message_id", Text),
    Column("content_type", Text, nullable=False),
    Column("body", Text),
    Column("metadata", Json, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("status", Text),
    Column("idempotency_key", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Delivery statuses that arrived before the message they refer to (applied when it appears).
pending_statuses = Table(
    "pending_statuses",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("channel", Text, nullable=False),
    Column("external_message_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("error", Json),
    Column("metadata", Json, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "external_message_id", "status", name="pending_statuses_uq"),
)

# --- Sending ---------------------------------------------------------------------------------
# One row per outbound message kobliat delivers to a provider (see kobliat.sending).
send_queue = Table(
    "send_queue",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("message_id", Uuid, nullable=False, unique=True),
    Column("conversation_id", Uuid, nullable=False),
    Column("provider", Text, nullable=False),  # whatsapp | telegram | twilio | generic
    Column("route", Json, nullable=False),  # who sends to whom, fixed when the message was posted
    Column("state", Text, nullable=False),  # queued | sending | failed (sent rows are deleted)
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("leased_until", UTCDateTime),
    Column("lease_owner", Text),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- Webhook inbox ----------------------------------------------------------------------------
inbox = Table(
    "inbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("channel", Text, nullable=False),
    Column("delivery_key", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("headers", Json, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    # Set when the delivery cannot succeed (or ran out of attempts): kept for an operator.
    Column("failed_at", UTCDateTime),
    UniqueConstraint("channel", "delivery_key", name="inbox_delivery_uq"),
)

# --- Events -----------------------------------------------------------------------------------
outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    # PostgreSQL: the writing transaction's id (server default); SQLite: 0. See events/outbox.py.
    Column("txid", BigInteger, nullable=False),
    Column("envelope", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Set when the relay has handed the row to every sink's queue (delivery_heads); each sink's
    # acknowledgement is recorded there, not here.
    Column("published_at", UTCDateTime),
)

aggregate_sequences = Table(
    "aggregate_sequences",
    metadata,
    Column("aggregate_id", Text, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    # The feed-order key of the aggregate's latest event (see kobliat.events.outbox.append).
    Column("last_txid", BigInteger, nullable=False, server_default="0"),
)

# Where the relay delivers: the NATS stream (one row) and each HTTP subscription.
sinks = Table(
    "sinks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", Text, nullable=False),  # "nats" | "http"
    Column("url", Text),
    Column("event_types", Json),  # list of types or "prefix.*" patterns; NULL = every event
    Column("secret", Text),  # Standard Webhooks secret (whsec_...), HTTP only
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per (sink, aggregate): how far that sink has acknowledged the aggregate's events.
# The relay leases a head to deliver it, so one aggregate is delivered by one relay at a time.
delivery_heads = Table(
    "delivery_heads",
    metadata,
    Column("sink_id", Uuid, ForeignKey("sinks.id", ondelete="CASCADE"), primary_key=True),
    Column("aggregate_id", Text, primary_key=True),
    Column("delivered_sequence", BigInteger, nullable=False),  # last acknowledged sequence
    Column("target_sequence", BigInteger, nullable=False),  # last sequence dispatched to it
    Column("state", Text, nullable=False),  # "ready" | "dead" (dead-lettered, waits for replay)
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("leased_until", UTCDateTime),
    Column("lease_owner", Text),
    Column("pending_since", UTCDateTime),  # creation time of the oldest undelivered event
    Column("last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- API keys ---------------------------------------------------------------------------------
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
)
