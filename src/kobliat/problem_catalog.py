"""Every problem `code` kobliat answers with, described: the pages behind problem `type` URIs.

An error answer's `type` is `/problems/{code}`; that URI answers with a page saying what the
problem means and what to do about it (`GET /problems` lists them all). A test keeps this
catalogue complete: every code the source raises must be described here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One problem: its HTTP status and what it means."""

    status: int
    meaning: str


CATALOG: dict[str, Entry] = {
    # Authentication and transport
    "missing-api-key": Entry(401, "The REST API needs `Authorization: Bearer <key>`."),
    "invalid-api-key": Entry(
        401, "The key is unknown or revoked (`kobliat keys list` shows the stored ones)."
    ),
    "missing-signature": Entry(
        401, "A webhook came without its channel's signature header; nothing was stored."
    ),
    "invalid-signature": Entry(
        401,
        "A webhook's signature does not match the configured secret (or its timestamp is too "
        "old); nothing was stored. Check that the provider and kobliat share the secret.",
    ),
    "handshake-refused": Entry(
        403, "Meta's verification handshake sent a verify token other than the configured one."
    ),
    "channel-not-configured": Entry(
        503,
        "The channel's secret is not set, so its webhooks are refused rather than accepted "
        "unsigned. Set the setting the detail names and restart kobliat.",
    ),
    "channel-misconfigured": Entry(
        503, "The channel's configured secret is not usable (wrong format); fix the setting."
    ),
    "database-unavailable": Entry(
        503, "The database is not answering. Retry after the `Retry-After` seconds."
    ),
    "relay-not-running": Entry(
        503,
        "A relay loop of this process is not running (`loops_stopped_here` names it); it is "
        "started again within a second or so. Events wait in the outbox meanwhile.",
    ),
    "payload-too-large": Entry(413, "The request body is larger than this endpoint accepts."),
    "malformed-payload": Entry(400, "The webhook's body is not the channel's format."),
    "repeated-header": Entry(
        400,
        "A webhook carried a signature or delivery-id header more than once; nothing was "
        "stored. Providers send each once: a repeat is a replay attempt or a broken proxy.",
    ),
    "unstorable-payload": Entry(
        422,
        "A webhook item (in `kobliat inbox list`) nested JSON deeper than 64 levels or held NaN "
        "or Infinity; that item was refused, the delivery's other items were stored.",
    ),
    "validation-error": Entry(
        422, "The request does not match the operation's schema; `errors` lists each field."
    ),
    "invalid-request": Entry(422, "The request cannot be understood as sent."),
    "invalid-input": Entry(422, "A value is not acceptable; the detail says which and why."),
    "invalid-cursor": Entry(400, "The cursor is not one this API gave out, or was altered."),
    "unknown-event": Entry(
        400, "The event id given as a feed position is not (or no longer) kept."
    ),
    "unknown-event-type": Entry(404, "No event type has that name (`GET /schemas/events`)."),
    # Resources
    "not-found": Entry(404, "Nothing exists at this path."),
    "customer-not-found": Entry(404, "No customer has that id."),
    "conversation-not-found": Entry(404, "No conversation has that id."),
    "message-not-found": Entry(404, "No message has that id."),
    "subscription-not-found": Entry(404, "No subscription has that id."),
    "subscription-destination-not-allowed": Entry(
        422,
        "The subscription URL points at a loopback, private, link-local, multicast, unspecified "
        "or reserved address (the detail names the rule). Use a public address, or set "
        "`KOBLIAT_SUBSCRIPTIONS_ALLOW_PRIVATE=true` for development.",
    ),
    "unknown-customer": Entry(422, "A participant's customer id names no stored customer."),
    # Customers
    "phone-number-without-country-code": Entry(
        422,
        "The phone number is in national form (`0612345678`): write it in international form "
        "(`+31 6 12345678`), or set KOBLIAT_DEFAULT_PHONE_REGION to the country such numbers "
        "belong to.",
    ),
    "invalid-phone-number": Entry(
        422,
        "The phone number cannot be read as one, or has no country code (write it in "
        "international format, `+44 7700 900123`, or configure a default region).",
    ),
    "invalid-external-id": Entry(422, "The identity is empty or not valid for its type."),
    "invalid-external-type": Entry(422, "The identity type is not one kobliat knows."),
    "invalid-sms-address": Entry(
        422, "Not a phone number, a short code or an alphanumeric sender id."
    ),
    # Conversations
    "rule-violation": Entry(409, "The change would break one of the conversation rules."),
    "direct-needs-exactly-two-participants": Entry(
        409, "A direct conversation has exactly two participants."
    ),
    "multi-needs-two-or-more-participants": Entry(
        409, "A multi conversation has at least two participants."
    ),
    "group-name-required": Entry(422, "A group conversation needs a `group_name`."),
    "group-fields-on-non-group": Entry(
        422, "`group_name`, `group_avatar` and `group_metadata` belong to group conversations."
    ),
    "invalid-role": Entry(
        422, "Group roles are owner, admin and member; other participants are members."
    ),
    "invalid-type": Entry(422, "Conversation types are direct, multi and group."),
    "invalid-status": Entry(422, "The status is not one this resource can have."),
    "invalid-status-transition": Entry(
        409, "Conversations move open ⇄ pending, → closed, and closed → open."
    ),
    "reopen-conflicts-with-open-conversation": Entry(
        409,
        "Another open conversation already holds this conversation's key (same channel and "
        "parties, or same group); close it first or write there.",
    ),
    "participants-match-another-conversation": Entry(
        409,
        "After this change a multi conversation would have the same parties as another open "
        "one on its channel; write there, or close it first.",
    ),
    "duplicate-participant": Entry(422, "The same customer is listed twice."),
    "participant-exists": Entry(409, "The customer already takes part in the conversation."),
    "participant-missing": Entry(409, "The customer does not take part in the conversation."),
    "move-of-non-group": Entry(422, "Only a group conversation can move to a new group id."),
    "conversation-closed": Entry(
        409, "The conversation is closed: reopen it, or write to the open one for its key."
    ),
    # Messages
    "sender-not-participant": Entry(409, "The sender must take part in the conversation."),
    "empty-message": Entry(422, "A message needs a body or content in its metadata."),
    "invalid-content-type": Entry(422, "The content type is not one kobliat stores."),
    "external-message-id-taken": Entry(
        409, "Another message on this channel already has that provider id."
    ),
    "idempotency-key-reused": Entry(
        409, "The Idempotency-Key was used before with a different request body."
    ),
    # Sending replies (docs/sending.md)
    "conversation-not-sendable": Entry(
        422,
        "The channel cannot deliver to this conversation (a multi conversation, a Twilio "
        "group, a group without its provider id); post to each direct conversation.",
    ),
    "content-type-not-sendable": Entry(
        422, "The conversation's channel cannot send this content type (docs/sending.md)."
    ),
    "media-url-missing": Entry(422, "A media message needs `metadata.url`, the media's URL."),
    "location-missing": Entry(
        422, "A location needs numeric `metadata.latitude` and `metadata.longitude`."
    ),
    "template-invalid": Entry(
        422,
        "A WhatsApp template needs `metadata.name` and `metadata.language`; through Twilio, "
        "`metadata.content_sid`.",
    ),
    "recipient-unknown": Entry(
        422, "kobliat cannot tell which participant to send to: let the customer write first."
    ),
    "sender-unknown": Entry(
        422,
        "No business endpoint to send from (for WhatsApp conversations opened through the API, "
        "set KOBLIAT_WHATSAPP_PHONE_NUMBER_ID).",
    ),
    "reply-target-invalid": Entry(
        422,
        "`metadata.reply_to_message_id` must name a message of this conversation that has an "
        "`external_message_id`.",
    ),
    "reply-not-sendable": Entry(422, "This channel (Twilio) has no reply context."),
    "whatsapp-window-closed": Entry(
        409,
        "More than 24 hours since the customer last wrote (or they never did): WhatsApp only "
        "takes a template message (`content_type` `template`) now.",
    ),
    # Errors of the HTTP layer itself
    "bad-request": Entry(400, "The request cannot be read."),
    "unauthorized": Entry(401, "Credentials are missing or wrong."),
    "forbidden": Entry(403, "The request is not allowed."),
    "method-not-allowed": Entry(405, "The path does not answer this method; `Allow` lists those."),
    "conflict": Entry(409, "The request conflicts with the current state."),
    "unsupported-media-type": Entry(415, "Send the body as `application/json`."),
    "unprocessable-content": Entry(422, "The request is well-formed but cannot be processed."),
    "service-unavailable": Entry(503, "kobliat cannot answer now; retry later."),
    "internal-error": Entry(500, "A bug in kobliat: the error was logged with its details."),
    "internal-server-error": Entry(500, "A bug in kobliat: the error was logged with details."),
}


def page(code: str) -> str | None:
    """The HTML page describing one problem, or None for an unknown code."""
    entry = CATALOG.get(code)
    if entry is None:
        return None
    title = html.escape(code)
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title>"
        f"<h1>{title}</h1><p>HTTP {entry.status}</p><p>{html.escape(entry.meaning)}</p>"
        '<p><a href="/problems">every problem</a> · <a href="/docs">the API</a></p></html>'
    )


def index() -> str:
    """The HTML list of every problem."""
    rows = "".join(
        f'<li><a href="/problems/{html.escape(code)}">{html.escape(code)}</a> '
        f"({entry.status}): {html.escape(entry.meaning)}</li>"
        for code, entry in sorted(CATALOG.items())
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>kobliat problems</title>"
        f"<h1>Problems kobliat answers with</h1><ul>{rows}</ul></html>"
    )
