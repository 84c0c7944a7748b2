"""Replies go out: WhatsApp Cloud, Telegram, Twilio and generic, against a local fake of each
provider's API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kobliat.channels.samples import twilio as tw_samples
from kobliat.channels.samples import whatsapp as wa_samples
from kobliat.db.engine import Database
from tests.e2e.sending_helpers import (
    message,
    open_telegram,
    open_twilio,
    open_whatsapp,
    sending_app,
    settled,
    status_events,
    wait_for,
)
from tests.e2e.webhooks import GENERIC_SECRET, TWILIO_TOKEN, Webhooks
from tests.support.providers import (
    Answer,
    FakeProviders,
    running_providers,
    telegram_error,
    twilio_error,
    whatsapp_error,
)

MEDIA = "https://cdn.example.com/files/receipt.jpg"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, on a free local port."""
    with running_providers(twilio_token=TWILIO_TOKEN, generic_secret=GENERIC_SECRET) as state:
        yield state
    assert state.malformed == []


def test_a_reply_on_each_channel_is_sent_once_then_delivered(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake) as client:
        chats = {
            "whatsapp": open_whatsapp(client, db),
            "telegram": open_telegram(client, db),
            "twilio": open_twilio(client, db),
        }
        posted = {}
        for provider, chat in chats.items():
            answer = client.post(f"/conversations/{chat}/messages", json={"body": f"hi {provider}"})
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"] == "pending"
            posted[provider] = answer.json()["id"]
        for provider, chat in chats.items():
            sent = settled(client, chat, posted[provider], "sent")
            calls = fake.accepted(provider)
            assert [c.text() for c in calls] == [f"hi {provider}"]
            assert sent["external_message_id"] == calls[0].external_id
        hooks = Webhooks(client)
        wamid = message(client, chats["whatsapp"], posted["whatsapp"])["external_message_id"]
        hooks.whatsapp(wa_samples.status(message_id=wamid, timestamp=int(time.time())))
        sid = message(client, chats["twilio"], posted["twilio"])["external_message_id"]
        status = tw_samples.status(
            message_sid=sid, sender=tw_samples.WA_NUMBER, to=tw_samples.WA_CUSTOMER
        )
        hooks.twilio(tw_samples.encode(status))
        settled(client, chats["whatsapp"], posted["whatsapp"], "delivered")
        settled(client, chats["twilio"], posted["twilio"], "delivered")
        steps = [e["status"] for e in status_events(client, posted["whatsapp"])]
        assert steps == ["sent", "delivered"]
    twilio_call = fake.accepted("twilio")[0]
    assert dict(twilio_call.fields) == {
        "To": tw_samples.WA_CUSTOMER,
        "From": tw_samples.WA_NUMBER,
        "Body": "hi twilio",
        "StatusCallback": "http://testserver/webhooks/twilio",
    }
    wa_call = fake.accepted("whatsapp")[0]
    assert wa_call.path == f"/whatsapp/v24.0/{wa_samples.PHONE_NUMBER_ID}/messages"
    assert wa_call.fields == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_samples.WA_ID,
        "type": "text",
        "text": {"preview_url": False, "body": "hi whatsapp"},
    }
    assert fake.accepted("telegram")[0].fields == {
        "chat_id": 512345678,
        "text": "hi telegram",
        "_method": "sendMessage",
    }


WHATSAPP_CONTENT = [
    (
        "image",
        "look",
        {"url": MEDIA},
        {"type": "image", "image": {"link": MEDIA, "caption": "look"}},
    ),
    ("audio", None, {"url": MEDIA}, {"type": "audio", "audio": {"link": MEDIA}}),
    (
        "video",
        "clip",
        {"url": MEDIA},
        {"type": "video", "video": {"link": MEDIA, "caption": "clip"}},
    ),
    (
        "file",
        "invoice",
        {"url": MEDIA, "filename": "invoice.pdf"},
        {
            "type": "document",
            "document": {"link": MEDIA, "caption": "invoice", "filename": "invoice.pdf"},
        },
    ),
    (
        "location",
        None,
        {"latitude": 38.72, "longitude": -9.14, "name": "Clinic B"},
        {
            "type": "location",
            "location": {"latitude": 38.72, "longitude": -9.14, "name": "Clinic B"},
        },
    ),
    (
        "template",
        None,
        {"name": "appointment_reminder", "language": "en_US", "components": [{"type": "body"}]},
        {
            "type": "template",
            "template": {
                "name": "appointment_reminder",
                "language": {"code": "en_US"},
                "components": [{"type": "body"}],
            },
        },
    ),
]


def test_each_whatsapp_content_type_becomes_its_documented_object(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake) as client:
        chat = open_whatsapp(client, db)
        ids = []
        for content_type, body, metadata, _ in WHATSAPP_CONTENT:
            answer = client.post(
                f"/conversations/{chat}/messages",
                json={"content_type": content_type, "body": body, "metadata": metadata},
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        for message_id in ids:
            settled(client, chat, message_id, "sent")
    calls = fake.accepted("whatsapp")
    assert len(calls) == len(WHATSAPP_CONTENT)
    for call, (_, _, _, expected) in zip(calls, WHATSAPP_CONTENT, strict=True):
        sent = {
            k: v
            for k, v in call.fields.items()
            if k not in ("messaging_product", "recipient_type", "to")
        }
        assert sent == expected


def test_telegram_media_location_and_reply_use_their_methods(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake) as client:
        chat = open_telegram(client, db)
        inbound = client.get(f"/conversations/{chat}/messages").json()["data"][0]
        posts = [
            {"content_type": "image", "body": "look", "metadata": {"url": MEDIA}},
            {"content_type": "audio", "metadata": {"url": MEDIA}},
            {"content_type": "video", "metadata": {"url": MEDIA}},
            {"content_type": "file", "body": "invoice", "metadata": {"url": MEDIA}},
            {"content_type": "location", "metadata": {"latitude": 38.72, "longitude": -9.14}},
            {"body": "answering you", "metadata": {"reply_to_message_id": inbound["id"]}},
        ]
        ids = [client.post(f"/conversations/{chat}/messages", json=p).json()["id"] for p in posts]
        for message_id in ids:
            settled(client, chat, message_id, "sent")
    calls = [c.fields for c in fake.accepted("telegram")]
    assert [c["_method"] for c in calls] == [
        "sendPhoto",
        "sendAudio",
        "sendVideo",
        "sendDocument",
        "sendLocation",
        "sendMessage",
    ]
    assert calls[0] == {
        "chat_id": 512345678,
        "photo": MEDIA,
        "caption": "look",
        "_method": "sendPhoto",
    }
    assert calls[4] == {
        "chat_id": 512345678,
        "latitude": 38.72,
        "longitude": -9.14,
        "_method": "sendLocation",
    }
    assert calls[5]["reply_parameters"] == {"message_id": 1}


def test_rate_limits_and_provider_errors_are_retried_then_sent(
    db: Database, fake: FakeProviders
) -> None:
    fake.script("telegram", telegram_error(429, "Too Many Requests: retry after 1", retry_after=1))
    fake.script("whatsapp", whatsapp_error(131016, "Service unavailable", status=500), Answer(503))
    fake.script("twilio", twilio_error(20429, "Too Many Requests", status=429))
    with sending_app(db, fake) as client:
        chats = {
            "telegram": open_telegram(client, db),
            "whatsapp": open_whatsapp(client, db),
            "twilio": open_twilio(client, db),
        }
        ids = {
            p: client.post(f"/conversations/{c}/messages", json={"body": f"to {p}"}).json()["id"]
            for p, c in chats.items()
        }
        for provider, chat in chats.items():
            settled(client, chat, ids[provider], "sent")
            assert [c.text() for c in fake.accepted(provider)] == [f"to {provider}"]
    attempts = {p: sum(c.provider == p for c in fake.calls) for p in chats}
    assert attempts == {"telegram": 2, "whatsapp": 3, "twilio": 2}
    tg_times = [c for c in fake.calls if c.provider == "telegram"]
    assert len(tg_times) == 2


def test_a_permanent_refusal_marks_the_message_failed_with_the_providers_error(
    db: Database, fake: FakeProviders
) -> None:
    fake.script("whatsapp", whatsapp_error(131026, "Message undeliverable"))
    fake.script("twilio", twilio_error(21211, "The 'To' number is not a valid phone number."))
    fake.script("telegram", telegram_error(403, "Forbidden: bot was blocked by the user"))
    with sending_app(db, fake) as client:
        chats = {
            "whatsapp": open_whatsapp(client, db),
            "twilio": open_twilio(client, db),
            "telegram": open_telegram(client, db),
        }
        ids = {
            p: client.post(f"/conversations/{c}/messages", json={"body": "x"}).json()["id"]
            for p, c in chats.items()
        }
        errors = {p: settled(client, chats[p], ids[p], "failed")["metadata"]["error"] for p in ids}
        assert status_events(client, ids["whatsapp"])[-1]["status"] == "failed"
    assert errors["whatsapp"]["code"] == 131026
    assert errors["whatsapp"]["details"] == "Message undeliverable"
    assert errors["twilio"] == {
        "http_status": 400,
        "code": 21211,
        "message": "The 'To' number is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
    }
    assert errors["telegram"]["code"] == 403
    assert fake.accepted() == []
    assert len(fake.calls) == 3  # a refusal is never retried


def test_what_a_channel_cannot_deliver_is_refused_when_posted(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake) as client:
        telegram = open_telegram(client, db)
        refused = client.post(
            f"/conversations/{telegram}/messages",
            json={"content_type": "template", "metadata": {"name": "x", "language": "en"}},
        )
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "telegram cannot send content_type 'template'" in refused.json()["detail"]
        no_url = client.post(
            f"/conversations/{telegram}/messages", json={"content_type": "image", "body": "x"}
        )
        assert no_url.status_code == 422 and "metadata.url" in no_url.json()["detail"]
        people = [
            client.post(
                "/customers", json={"external_type": "telegram", "external_id": str(n)}
            ).json()["id"]
            for n in (11, 12, 13)
        ]
        multi = client.post(
            "/conversations",
            json={
                "type": "multi",
                "channel": "telegram",
                "participants": [{"customer_id": p} for p in people],
            },
        ).json()
        to_multi = client.post(f"/conversations/{multi['id']}/messages", json={"body": "hello all"})
        assert to_multi.status_code == 422 and "multi" in to_multi.json()["detail"]
        assert client.get(f"/conversations/{multi['id']}/messages").json()["data"] == []
        assert len(client.get(f"/conversations/{telegram}/messages").json()["data"]) == 1
    assert fake.calls == []


def test_whatsapp_free_form_outside_the_window_is_a_409_and_a_template_goes_out(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake, whatsapp_phone_number_id="109876543210987") as client:
        people = [
            client.post("/customers", json={"external_type": "whatsapp", "external_id": n}).json()[
                "id"
            ]
            for n in ("+447700900111",)
        ]
        chat = client.post(
            "/conversations",
            json={
                "type": "direct",
                "channel": "whatsapp",
                "participants": [
                    {"customer_id": people[0]},
                    {
                        "customer_id": client.post(
                            "/customers",
                            json={"external_type": "email", "external_id": "desk@clinic.example"},
                        ).json()["id"]
                    },
                ],
            },
        ).json()["id"]
        closed = client.post(f"/conversations/{chat}/messages", json={"body": "hello"})
        assert closed.status_code == 409
        assert "24-hour customer service window" in closed.json()["detail"]
        template = client.post(
            f"/conversations/{chat}/messages",
            json={"content_type": "template", "metadata": {"name": "welcome", "language": "en_US"}},
        )
        assert template.status_code == 201, template.text
        settled(client, chat, template.json()["id"], "sent")
    [call] = fake.accepted("whatsapp")
    assert call.path == "/whatsapp/v24.0/109876543210987/messages"
    assert call.fields["to"] == "447700900111"
    assert call.fields["template"] == {"name": "welcome", "language": {"code": "en_US"}}


def test_generic_replies_are_signed_and_carry_the_message_id(
    db: Database, fake: FakeProviders
) -> None:
    from kobliat.channels.samples import generic as generic_samples

    with sending_app(db, fake) as client:
        assert Webhooks(client).generic(generic_samples.message()).status_code == 200
        chat = client.get("/conversations", params={"channel": "generic"}).json()["data"][0]["id"]
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "we got it"}).json()
        sent = settled(client, chat, posted["id"], "sent")
    [call] = fake.accepted("generic")
    assert call.fields["id"] == posted["id"] == sent["external_message_id"]
    assert call.fields["body"] == "we got it"
    assert call.fields["to"]["id"] == "ana.souza@example.com"


def test_without_sending_credentials_a_reply_is_only_recorded(
    db: Database, fake: FakeProviders
) -> None:
    with sending_app(db, fake, telegram_bot_token=None) as client:
        chat = open_telegram(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "noted"}).json()
        time.sleep(0.5)
        assert message(client, chat, posted["id"])["status"] == "pending"
    assert fake.calls == []


def test_metrics_count_sends_and_the_backlog(db: Database, fake: FakeProviders) -> None:
    with sending_app(db, fake) as client:
        chat = open_telegram(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "m"}).json()
        settled(client, chat, posted["id"], "sent")
        text = wait_for(
            lambda: (
                (t := client.get("/metrics").text)
                and 'kobliat_send_queue{state="queued"}' in t
                and t
            ),
            what="the backlog gauge",
        )
    assert 'kobliat_sends_total{channel="telegram",outcome="sent",provider="telegram"}' in text


def test_an_unanswered_request_is_never_resent_except_where_the_receiver_deduplicates(
    db: Database, fake: FakeProviders
) -> None:
    from kobliat.channels.samples import generic as generic_samples

    fake.script("whatsapp", Answer(drop=True))
    fake.script("generic", Answer(drop=True))
    with sending_app(db, fake) as client:
        chat = open_whatsapp(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "maybe"}).json()
        failed = settled(client, chat, posted["id"], "failed")
        assert failed["metadata"]["error"]["code"] == "send-outcome-unknown"
        assert Webhooks(client).generic(generic_samples.message()).status_code == 200
        other = client.get("/conversations", params={"channel": "generic"}).json()["data"][0]["id"]
        resent = client.post(f"/conversations/{other}/messages", json={"body": "again"}).json()
        settled(client, other, resent["id"], "sent")
    assert [c.provider for c in fake.calls].count("whatsapp") == 1
    generic_calls = [c for c in fake.calls if c.provider == "generic"]
    assert len(generic_calls) == 2
    assert {c.headers["webhook-id"] for c in generic_calls} == {resent["id"]}


def test_a_refused_connection_is_retried_until_the_attempts_run_out(
    db: Database, fake: FakeProviders
) -> None:
    from tests.support.postgres import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    with sending_app(db, fake, telegram_api_url=closed, send_max_attempts=3) as client:
        chat = open_telegram(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "anyone?"}).json()
        error = settled(client, chat, posted["id"], "failed")["metadata"]["error"]
    assert error == {
        "code": "connection-failed",
        "message": "ConnectError",
        "attempts": 3,
        "gave_up": True,
    }


def test_an_idempotent_repeat_of_a_post_is_sent_once(db: Database, fake: FakeProviders) -> None:
    with sending_app(db, fake) as client:
        chat = open_telegram(client, db)
        key = {"Idempotency-Key": "reply-7"}
        first = client.post(f"/conversations/{chat}/messages", json={"body": "once"}, headers=key)
        again = client.post(f"/conversations/{chat}/messages", json={"body": "once"}, headers=key)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        settled(client, chat, first.json()["id"], "sent")
        later = client.post(f"/conversations/{chat}/messages", json={"body": "once"}, headers=key)
        assert later.json()["status"] == "sent"
    assert [c.text() for c in fake.calls] == ["once"]
