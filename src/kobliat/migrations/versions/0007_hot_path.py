"""The webhook hot path: one server-side function for the common inbound message.

`kobliat_ingest_direct` does, in one round trip, what the general ingest flow does for a known
sender (profile unchanged) writing into its open direct conversation: the inbox row, the
message (skipping a duplicate per channel and provider id), the forward-only activity times, the
conversation's sequence bump and feed-order key, and the outbox row. Any other case writes
nothing and answers 'fallback', so the caller runs the general flow. See kobliat/ingest_fast.py.

PostgreSQL only: SQLite has no server-side functions and keeps the general flow.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Reads first and writes nothing until every condition holds, so 'fallback' leaves no trace.
# The conversation is locked as it is found (it is updated below anyway): one closed meanwhile
# is seen closed after the wait, and the message goes the general way instead of into it.
# The conversation key and the sequence/feed-key upsert are the SQL twins of
# conversations.model.conversation_key and events.outbox._reserve.
FUNCTION = """
CREATE FUNCTION kobliat_ingest_direct(
    p_inbox_channel text, p_delivery_key text, p_raw bytea, p_headers jsonb,
    p_received_at timestamptz, p_now timestamptz, p_channel text,
    p_sender_type text, p_sender_id text, p_sender_name text, p_sender_meta jsonb,
    p_business_type text, p_business_id text, p_business_name text, p_business_meta jsonb,
    p_message_id uuid, p_external_message_id text, p_content_type text, p_body text,
    p_metadata jsonb, p_sent_at timestamptz, p_event_id uuid, p_envelope jsonb
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_sender uuid;
    v_business uuid;
    v_conversation uuid;
    v_sequence bigint;
    v_txid bigint;
BEGIN
    SELECT id INTO v_sender FROM customers
        WHERE external_type = p_sender_type AND external_id = p_sender_id
          AND (p_sender_name IS NULL OR name IS NOT DISTINCT FROM p_sender_name)
          AND (p_sender_meta IS NULL OR metadata @> p_sender_meta);
    SELECT id INTO v_business FROM customers
        WHERE external_type = p_business_type AND external_id = p_business_id
          AND (p_business_name IS NULL OR name IS NOT DISTINCT FROM p_business_name)
          AND (p_business_meta IS NULL OR metadata @> p_business_meta);
    IF v_sender IS NULL OR v_business IS NULL OR v_sender = v_business THEN
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

DROP = """
DROP FUNCTION IF EXISTS kobliat_ingest_direct(
    text, text, bytea, jsonb, timestamptz, timestamptz, text, text, text, text, jsonb,
    text, text, text, jsonb, uuid, text, text, text, jsonb, timestamptz, uuid, jsonb)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
