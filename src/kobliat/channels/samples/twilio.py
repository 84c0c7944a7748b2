"""Realistic Twilio Messaging webhook forms (invented SIDs and numbers), as decoded pairs.

Every builder is deterministic given its arguments; `encode` gives the request body.
"""

from __future__ import annotations

from urllib.parse import urlencode

ACCOUNT_SID = "ACe6d6d6ba1e4f4c13f717257e56bfe59a"
MESSAGING_SERVICE_SID = "MG8a9e9f80dee6285e58f0fd01bc008050"
MESSAGE_SID = "SMcdfb1013b0f482424ec5410a2d174797"
SMS_CUSTOMER = "+447400123456"
SMS_NUMBER = "+12015550123"
WA_CUSTOMER = "whatsapp:+5511987654321"
WA_NUMBER = "whatsapp:+14155238886"
WEBHOOK_URL = "https://hooks.example.com/webhooks/twilio"

Pairs = list[tuple[str, str]]


def encode(pairs: Pairs) -> bytes:
    """The `application/x-www-form-urlencoded` body Twilio would POST."""
    return urlencode(pairs).encode()


def _inbound(
    *, message_sid: str, sender: str, to: str, body: str, num_media: int, extra: Pairs
) -> Pairs:
    pairs = [
        ("SmsMessageSid", message_sid),
        ("NumMedia", str(num_media)),
        ("SmsSid", message_sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", message_sid),
        ("AccountSid", ACCOUNT_SID),
        ("MessagingServiceSid", MESSAGING_SERVICE_SID),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]
    return pairs + extra


def sms(
    *,
    message_sid: str = MESSAGE_SID,
    sender: str = SMS_CUSTOMER,
    to: str = SMS_NUMBER,
    body: str = "Can I move my appointment to Friday?",
) -> Pairs:
    """An inbound SMS, with Twilio's best-effort geo fields."""
    geo = [
        ("FromCity", "LONDON"),
        ("FromCountry", "GB"),
        ("ToCity", "HACKENSACK"),
        ("ToState", "NJ"),
        ("ToZip", "07601"),
        ("ToCountry", "US"),
    ]
    return _inbound(
        message_sid=message_sid, sender=sender, to=to, body=body, num_media=0, extra=geo
    )


def mms(
    *,
    message_sid: str = "MMdc71a8f0c0a24d1e9b6a7c3e2f1d0a99",
    sender: str = SMS_CUSTOMER,
    to: str = SMS_NUMBER,
    body: str = "Front and back of my insurance card",
    media: tuple[tuple[str, str], ...] = (
        ("ME334af13995e760c76c248a4d6619e728", "image/jpeg"),
        ("ME9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e", "image/png"),
    ),
) -> Pairs:
    """An inbound MMS carrying several attachments."""
    return _inbound(
        message_sid=message_sid,
        sender=sender,
        to=to,
        body=body,
        num_media=len(media),
        extra=_media_pairs(message_sid, media),
    )


def _media_pairs(message_sid: str, media: tuple[tuple[str, str], ...]) -> Pairs:
    base = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}"
    pairs: Pairs = []
    for index, (media_sid, content_type) in enumerate(media):
        pairs.append((f"MediaContentType{index}", content_type))
        pairs.append((f"MediaUrl{index}", f"{base}/Media/{media_sid}"))
    return pairs


def _whatsapp_profile(sender: str, profile_name: str) -> Pairs:
    return [("ProfileName", profile_name), ("WaId", sender.removeprefix("whatsapp:+"))]


def whatsapp_text(
    *,
    message_sid: str = "SM5f2a9c0e7b3d4a1f8e6c2b9d0a7f3e11",
    sender: str = WA_CUSTOMER,
    to: str = WA_NUMBER,
    profile_name: str = "Joana",
    body: str = "Bom dia, posso remarcar?",
) -> Pairs:
    """An inbound WhatsApp text through Twilio."""
    profile = _whatsapp_profile(sender, profile_name)
    return _inbound(
        message_sid=message_sid, sender=sender, to=to, body=body, num_media=0, extra=profile
    )


def whatsapp_media(
    *,
    message_sid: str = "MM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    sender: str = WA_CUSTOMER,
    to: str = WA_NUMBER,
    profile_name: str = "Joana",
    body: str = "Segue a foto do pedido",
    content_type: str = "image/jpeg",
) -> Pairs:
    """An inbound WhatsApp media message through Twilio."""
    media = _media_pairs(message_sid, (("ME5e4d3c2b1a09f8e7d6c5b4a39281706f", content_type),))
    extra = _whatsapp_profile(sender, profile_name) + media
    return _inbound(
        message_sid=message_sid, sender=sender, to=to, body=body, num_media=1, extra=extra
    )


def whatsapp_location(
    *,
    message_sid: str = "SM7c6b5a49382716f5e4d3c2b1a0f9e8d7",
    sender: str = WA_CUSTOMER,
    to: str = WA_NUMBER,
    profile_name: str = "Joana",
    latitude: str = "-23.5613",
    longitude: str = "-46.6565",
) -> Pairs:
    """An inbound WhatsApp location share through Twilio."""
    extra = [
        *_whatsapp_profile(sender, profile_name),
        ("MessageType", "location"),
        ("Latitude", latitude),
        ("Longitude", longitude),
        ("Address", "Av. Paulista, 1000, São Paulo"),
        ("Label", "Clínica Paulista"),
    ]
    return _inbound(
        message_sid=message_sid, sender=sender, to=to, body="", num_media=0, extra=extra
    )


def whatsapp_button(
    *,
    message_sid: str = "SM1e2d3c4b5a69788796a5b4c3d2e1f0a9",
    sender: str = WA_CUSTOMER,
    to: str = WA_NUMBER,
    profile_name: str = "Joana",
    payload: str = "CONFIRM_APPOINTMENT",
    text: str = "Confirmar",
    replied_sid: str = "SMf0e1d2c3b4a5968778695a4b3c2d1e0f",
) -> Pairs:
    """A quick-reply button tapped on a template we sent through Twilio."""
    extra = [
        *_whatsapp_profile(sender, profile_name),
        ("MessageType", "button"),
        ("ButtonText", text),
        ("ButtonPayload", payload),
        ("OriginalRepliedMessageSender", to),
        ("OriginalRepliedMessageSid", replied_sid),
    ]
    return _inbound(
        message_sid=message_sid, sender=sender, to=to, body=text, num_media=0, extra=extra
    )


def status(
    *,
    message_sid: str = "SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55",
    status: str = "delivered",
    sender: str = SMS_NUMBER,
    to: str = SMS_CUSTOMER,
    error_code: str | None = None,
    error_message: str | None = None,
) -> Pairs:
    """A status callback for a message we sent (`sender` is our number here)."""
    pairs = [
        ("SmsSid", message_sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessagingServiceSid", MESSAGING_SERVICE_SID),
        ("MessageSid", message_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]
    if error_code is not None:
        pairs.append(("ErrorCode", error_code))
    if error_message is not None:
        pairs.append(("ErrorMessage", error_message))
    return pairs
