"""Every named sample, per channel: the source of the test fixtures and of `kobliat simulate`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from kobliat.channels.samples import generic, telegram, twilio, whatsapp
from kobliat.channels.samples import whatsapp_messages as wa

# JSON channels build bytes; Twilio builds decoded form pairs.
Sample = bytes | list[tuple[str, str]]

WHATSAPP: dict[str, Callable[[], Sample]] = {
    "text": wa.text,
    "text_reply": partial(wa.text, body="Yes, Friday works", reply_to=whatsapp.OUR_MESSAGE_ID),
    "text_br_without_ninth_digit": partial(wa.text, wa_id=whatsapp.BR_WA_ID_WITHOUT_NINTH_DIGIT),
    "text_br_with_ninth_digit": partial(wa.text, wa_id=whatsapp.BR_WA_ID_WITH_NINTH_DIGIT),
    "text_mx_521": partial(wa.text, wa_id=whatsapp.MX_WA_ID_WITH_1, name="Lupita"),
    "text_mx_without_1": partial(wa.text, wa_id=whatsapp.MX_WA_ID_WITHOUT_1, name="Lupita"),
    "group_text": partial(
        wa.text, body="Adding my sister so she can see the times too", group_id=whatsapp.GROUP_ID
    ),
    "bsuid_text": wa.bsuid_text,
    "image": partial(wa.media, "image", caption="my referral letter"),
    "video": partial(wa.media, "video", mime_type="video/mp4", media_id="1406281951234567"),
    "audio_voice": partial(
        wa.media,
        "audio",
        mime_type="audio/ogg; codecs=opus",
        media_id="1099812345678901",
        voice=True,
    ),
    "document": partial(
        wa.media,
        "document",
        mime_type="application/pdf",
        media_id="2201987654321098",
        filename="referral.pdf",
        caption="the referral",
    ),
    "sticker": partial(wa.media, "sticker", mime_type="image/webp", media_id="772211334455667"),
    "location": wa.location,
    "contacts": wa.contacts,
    "button_reply": wa.interactive,
    "list_reply": partial(wa.interactive, "list_reply", description="Clinic B"),
    "nfm_reply": wa.flow_reply,
    "button": wa.template_button,
    "reaction": wa.reaction,
    "reaction_removed": partial(wa.reaction, emoji=""),
    "order": wa.order,
    "system": wa.system,
    "unsupported": wa.unsupported,
    "unknown_type": partial(wa.unsupported, kind="ephemeral"),
    "batch": whatsapp.batch,
    "status_sent": partial(whatsapp.status, status="sent"),
    "status_delivered": partial(whatsapp.status, status="delivered"),
    "status_read": partial(whatsapp.status, status="read"),
    "status_played": partial(whatsapp.status, status="played"),
    "status_failed": partial(whatsapp.status, status="failed", error_code=131047),
    "account_update": whatsapp.account_update,
}

TELEGRAM: dict[str, Callable[[], Sample]] = {
    "private_text_reply": telegram.private_text,
    "group_photo": telegram.group_photo,
    "supergroup_topic_text": telegram.supergroup_text,
    "supergroup_anonymous_admin": partial(
        telegram.supergroup_text, thread_id=None, anonymous_admin=True
    ),
    "video": partial(telegram.media, "video", caption="how to find us"),
    "animation": partial(telegram.media, "animation"),
    "voice": partial(telegram.media, "voice"),
    "audio": partial(telegram.media, "audio"),
    "document": partial(telegram.media, "document", caption="my referral"),
    "sticker": partial(telegram.media, "sticker"),
    "location": telegram.location,
    "venue": telegram.venue,
    "contact": telegram.contact,
    "poll": telegram.poll,
    "dice": telegram.dice,
    "edited_message": telegram.edited_message,
    "channel_post": telegram.channel_post,
    "callback_query": telegram.callback_query,
    "my_chat_member": telegram.my_chat_member,
    "migrate_to_supergroup": telegram.migrate_to_supergroup,
}

TWILIO: dict[str, Callable[[], Sample]] = {
    "sms": twilio.sms,
    "mms": twilio.mms,
    "whatsapp_text": twilio.whatsapp_text,
    "whatsapp_media": twilio.whatsapp_media,
    "whatsapp_location": twilio.whatsapp_location,
    "whatsapp_button": twilio.whatsapp_button,
    "status_sent": partial(twilio.status, status="sent"),
    "status_delivered": partial(twilio.status, status="delivered"),
    "status_read": partial(
        twilio.status, status="read", sender=twilio.WA_NUMBER, to=twilio.WA_CUSTOMER
    ),
    "status_undelivered": partial(
        twilio.status,
        status="undelivered",
        error_code="30003",
        error_message="Unreachable destination handset",
    ),
    "status_queued": partial(twilio.status, status="queued"),
}

GENERIC: dict[str, Callable[[], Sample]] = {
    "message": generic.message,
    "group_message": generic.group_message,
    "multi_message": generic.multi_message,
    "status": generic.status,
    "batch": generic.batch,
}

CATALOG: dict[str, dict[str, Callable[[], Sample]]] = {
    "whatsapp": WHATSAPP,
    "telegram": TELEGRAM,
    "twilio": TWILIO,
    "generic": GENERIC,
}
