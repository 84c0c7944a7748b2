"""The webhook hot path for a first contact: one server-side function, as for a known sender.

`kobliat_ingest_direct` now tells a sender nobody has seen ('new-sender') from the other cases it
leaves to the general flow ('fallback'); it still writes nothing when it does not store. For such
a sender the caller sends `kobliat_ingest_first`, which writes what the general flow writes for a
first contact in one round trip: the customer, the direct conversation with its open-conversation
key and its two participants, the inbox row, the message, the sequences and feed-order keys of
the two new aggregates, and the outbox rows customer.created, conversation.opened and
message.inbound.created, in that order. See kobliat/ingest_fast.py.

PostgreSQL only: SQLite has no server-side functions and keeps the general flow.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The parameters both functions take (the first-contact one takes four more after them).
DIRECT_PARAMETERS = """
    p_inbox_channel text, p_delivery_key text, p_raw bytea, p_headers jsonb,
    p_received_at timestamptz, p_now timestamptz, p_channel text,
    p_sender_type text, p_sender_id text, p_sender_name text, p_sender_meta jsonb,
    p_business_type text, p_business_id text, p_business_name text, p_business_meta jsonb,
    p_message_id uuid, p_external_message_id text, p_content_type text, p_body text,
    p_metadata jsonb, p_sent_at timestamptz, p_event_id uuid, p_envelope jsonb"""

DIRECT_TYPES = """
    text, text, bytea, jsonb, timestamptz, timestamptz, text, text, text, text, jsonb,
    text, text, text, jsonb, uuid, text, text, text, jsonb, timestamptz, uuid, jsonb"""

# The business endpoint, found only when its stored profile already holds the payload's.
BUSINESS = """
    SELECT id INTO v_business FROM customers
        WHERE external_type = p_business_type AND external_id = p_business_id
          AND (p_business_name IS NULL OR name IS NOT DISTINCT FROM p_business_name)
          AND (p_business_meta IS NULL OR metadata @> p_business_meta);"""

# 0007's function, except that an unknown sender writing to a known business endpoint answers
# 'new-sender' (a NULL containment test is "changed", as 0007's WHERE clause had it).
DIRECT = f"""
CREATE OR REPLACE FUNCTION kobliat_ingest_direct({DIRECT_PARAMETERS}
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_sender uuid;
    v_unchanged boolean;
    v_business uuid;
    v_conversation uuid;
    v_sequence bigint;
    v_txid bigint;
BEGIN
    SELECT id, (p_sender_name IS NULL OR name IS NOT DISTINCT FROM p_sender_name)
               AND (p_sender_meta IS NULL OR metadata @> p_sender_meta)
        INTO v_sender, v_unchanged FROM customers
        WHERE external_type = p_sender_type AND external_id = p_sender_id;
    {BUSINESS}
    IF v_business IS NULL THEN
        RETURN 'fallback';
    END IF;
    IF v_sender IS NULL THEN
        RETURN 'new-sender';
    END IF;
    IF v_unchanged IS NOT TRUE OR v_sender = v_business THEN
        RETURN 'fallback';
    END IF;
    SELECT id INTO v_conversation FROM conversations
        WHERE conversation_key = 'direct:' || p_channel || ':' || CASE
                WHEN v_sender < v_business THEN v_sender::text || ',' || v_business::text
                ELSE v_business::text || ',' || v_sender::text END
          AND status <> 'closed'
        FOR UPDATE;
    IF v_conversation IS NULL THEN
        RETURN 'fallback';
    END IF;

    INSERT INTO inbox (channel, delivery_key, body, headers, received_at, processed_at,
                       attempts, next_attempt_at)
        VALUES (p_inbox_channel, p_delivery_key, p_raw, p_headers, p_received_at, p_now,
                1, p_now)
        ON CONFLICT (channel, delivery_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'delivery-duplicate';
    END IF;
    INSERT INTO messages (id, conversation_id, sender_customer_id, direction, channel,
                          external_message_id, content_type, body, metadata, sent_at, status,
                          created_at, updated_at)
        VALUES (p_message_id, v_conversation, v_sender, 'inbound', p_channel,
                p_external_message_id, p_content_type, p_body, p_metadata, p_sent_at,
                'received', p_now, p_now)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    UPDATE conversations SET
        last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < p_sent_at
                               THEN p_sent_at ELSE last_message_at END,
        last_activity_at = CASE WHEN last_activity_at < p_sent_at
                                THEN p_sent_at ELSE last_activity_at END
        WHERE id = v_conversation;
    INSERT INTO aggregate_sequences AS s (aggregate_id, last_sequence, last_txid)
        VALUES (v_conversation::text, 1, pg_current_xact_id()::text::bigint)
        ON CONFLICT (aggregate_id) DO UPDATE SET
            last_sequence = s.last_sequence + 1,
            last_txid = CASE WHEN excluded.last_txid > s.last_txid
                             THEN excluded.last_txid ELSE s.last_txid END
        RETURNING last_sequence, last_txid INTO v_sequence, v_txid;
    INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, sequence, txid,
                        envelope, created_at)
        VALUES (p_event_id, 'message.inbound.created', 'conversation', v_conversation::text,
                v_sequence, v_txid,
                p_envelope || jsonb_build_object(
                    'subject', v_conversation::text,
                    'sequence', v_sequence,
                    'data', (p_envelope -> 'data') || jsonb_build_object(
                        'conversation_id', v_conversation::text,
                        'sender_customer_id', v_sender::text)),
                p_now);
    RETURN 'stored';
END
$$
"""

# Reads first, and 'fallback' / 'delivery-duplicate' only before the first write. That write is
# the customer: the identity's unique constraint decides between concurrent first contacts of
# one sender (a second writer waits for the first to commit). The one that finds the customer
# there hands the delivery to kobliat_ingest_direct with the same parameters (it stores into the
# winner's conversation, or answers 'fallback' and the general flow takes it). Nothing after the
# customer can meet a row of another writer but a delivery or message id stored by a transaction
# that had not committed when it was looked for: that raises, and the whole batch goes the
# general way. The conversation's key holds the new customer's id: no other conversation has it.
# Both aggregates are new, so their sequences are 1 (customer) and 1, 2 (conversation), with this
# transaction's id as the feed-order key, as events.outbox.append writes them; the outbox rows go
# in the order the general flow raises the events. The conversation row is written with its
# activity times already moved to the message (the general flow inserts, then updates).
FIRST = f"""
CREATE FUNCTION kobliat_ingest_first({DIRECT_PARAMETERS},
    p_customer_id uuid, p_customer_envelope jsonb,
    p_conversation_id uuid, p_opened_envelope jsonb
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_business uuid;
    v_answer text;
    v_txid bigint;
BEGIN
    {BUSINESS}
    IF v_business IS NULL THEN
        RETURN 'fallback';
    END IF;
    PERFORM 1 FROM inbox WHERE channel = p_inbox_channel AND delivery_key = p_delivery_key;
    IF FOUND THEN
        RETURN 'delivery-duplicate';
    END IF;
    PERFORM 1 FROM messages
        WHERE channel = p_channel AND external_message_id = p_external_message_id;
    IF FOUND THEN
        RETURN 'fallback';
    END IF;

    INSERT INTO customers (id, external_id, external_type, name, metadata, created_at,
                           updated_at)
        VALUES (p_customer_id, p_sender_id, p_sender_type, p_sender_name,
                COALESCE(p_sender_meta, '{{}}'::jsonb), p_now, p_now)
        ON CONFLICT (external_type, external_id) DO NOTHING;
    IF NOT FOUND THEN
        v_answer := kobliat_ingest_direct(
            p_inbox_channel, p_delivery_key, p_raw, p_headers, p_received_at, p_now, p_channel,
            p_sender_type, p_sender_id, p_sender_name, p_sender_meta,
            p_business_type, p_business_id, p_business_name, p_business_meta,
            p_message_id, p_external_message_id, p_content_type, p_body,
            p_metadata, p_sent_at, p_event_id, p_envelope);
        RETURN CASE WHEN v_answer = 'new-sender' THEN 'fallback' ELSE v_answer END;
    END IF;
    INSERT INTO conversations (id, type, status, channel, external_id, conversation_key,
                               group_name, group_avatar, group_metadata, last_message_at,
                               created_at, updated_at, last_activity_at)
        VALUES (p_conversation_id, 'direct', 'open', p_channel, NULL,
                'direct:' || COALESCE(NULLIF(p_channel, ''), '-') || ':' || CASE
                    WHEN p_customer_id < v_business
                    THEN p_customer_id::text || ',' || v_business::text
                    ELSE v_business::text || ',' || p_customer_id::text END,
                NULL, NULL, '{{}}'::jsonb, p_sent_at,
                p_now, p_now, GREATEST(p_now, p_sent_at));
    INSERT INTO conversation_participants (id, conversation_id, customer_id, role, joined_at,
                                           metadata)
        VALUES (gen_random_uuid(), p_conversation_id, p_customer_id, 'member', p_now,
                '{{}}'::jsonb),
               (gen_random_uuid(), p_conversation_id, v_business, 'member', p_now,
                '{{}}'::jsonb);
    INSERT INTO inbox (channel, delivery_key, body, headers, received_at, processed_at,
                       attempts, next_attempt_at)
        VALUES (p_inbox_channel, p_delivery_key, p_raw, p_headers, p_received_at, p_now,
                1, p_now);
    INSERT INTO messages (id, conversation_id, sender_customer_id, direction, channel,
                          external_message_id, content_type, body, metadata, sent_at, status,
                          created_at, updated_at)
        VALUES (p_message_id, p_conversation_id, p_customer_id, 'inbound', p_channel,
                p_external_message_id, p_content_type, p_body, p_metadata, p_sent_at,
                'received', p_now, p_now);
    v_txid := pg_current_xact_id()::text::bigint;
    INSERT INTO aggregate_sequences (aggregate_id, last_sequence, last_txid)
        VALUES (p_customer_id::text, 1, v_txid), (p_conversation_id::text, 2, v_txid);
    INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, sequence, txid,
                        envelope, created_at)
        VALUES ((p_customer_envelope ->> 'id')::uuid, 'customer.created', 'customer',
                p_customer_id::text, 1, v_txid, p_customer_envelope, p_now),
               ((p_opened_envelope ->> 'id')::uuid, 'conversation.opened', 'conversation',
                p_conversation_id::text, 1, v_txid,
                jsonb_set(p_opened_envelope, '{{data,participants,1}}',
                          to_jsonb(v_business::text)),
                p_now),
               (p_event_id, 'message.inbound.created', 'conversation',
                p_conversation_id::text, 2, v_txid,
                p_envelope || jsonb_build_object(
                    'subject', p_conversation_id::text,
                    'sequence', 2,
                    'data', (p_envelope -> 'data') || jsonb_build_object(
                        'conversation_id', p_conversation_id::text,
                        'sender_customer_id', p_customer_id::text)),
                p_now);
    RETURN 'stored';
END
$$
"""

DROP_FIRST = f"""
DROP FUNCTION IF EXISTS kobliat_ingest_first({DIRECT_TYPES}, uuid, jsonb, uuid, jsonb)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DIRECT)
        op.execute(FIRST)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_FIRST)
        op.execute(_direct_of_0007())


def _direct_of_0007() -> str:
    """0007's kobliat_ingest_direct, which answers 'fallback' for an unknown sender too."""
    import importlib

    previous = importlib.import_module("kobliat.migrations.versions.0007_hot_path")
    text: str = previous.FUNCTION
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
