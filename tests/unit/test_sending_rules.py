"""Sending rules without I/O: pacing, retry delays, content checks, reading providers' answers."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from kobliat.errors import InvalidInput
from kobliat.sending.clients import Pace
from kobliat.sending.model import Job, Route, check_content, retry_delay
from kobliat.sending.pacing import Pacer
from kobliat.sending.telegram_api import TelegramClient
from kobliat.sending.twilio_api import TwilioClient
from kobliat.sending.whatsapp_api import WhatsAppClient
from kobliat.settings import Settings

SETTINGS = Settings(  # type: ignore[call-arg]
    _env_file=None,
    whatsapp_access_token="t",
    telegram_bot_token="1:x",
    twilio_account_sid="AC1",
    twilio_auth_token="twilio-token-1",
)


def job(provider: str = "telegram", to: str = "5") -> Job:
    route = Route(provider, "1", to)  # type: ignore[arg-type]
    return Job(1, uuid4(), uuid4(), route, 1, provider, "text", "hi", {})


def test_a_bucket_lets_a_burst_through_then_spaces_sends_at_its_rate() -> None:
    now = [0.0]
    pacer = Pacer(clock=lambda: now[0])
    chat = [Pace("chat", 1.0, 1.0)]
    assert pacer.reserve(chat) == 0.0
    assert pacer.reserve(chat) == pytest.approx(1.0)
    assert pacer.reserve(chat) == pytest.approx(2.0)
    now[0] = 10.0
    assert pacer.reserve(chat) == 0.0


def test_the_strictest_bucket_decides() -> None:
    pacer = Pacer(clock=lambda: 0.0)
    paces = [Pace("bot", 30.0, 30.0), Pace("group", 20 / 60, 1.0)]
    assert pacer.reserve(paces) == 0.0
    assert pacer.reserve(paces) == pytest.approx(3.0)


def test_retry_after_is_honoured_up_to_the_cap_and_backoff_grows() -> None:
    assert retry_delay(1, base=1, cap=300, retry_after=7) == 7
    assert retry_delay(1, base=1, cap=5, retry_after=60) == 5
    assert 4 <= retry_delay(4, base=1, cap=300) <= 8
    assert retry_delay(30, base=1, cap=300) <= 300


def test_content_a_channel_lacks_is_refused() -> None:
    with pytest.raises(InvalidInput, match="telegram cannot send content_type 'template'"):
        check_content("telegram", "template", None, {"name": "x", "language": "en"})
    with pytest.raises(InvalidInput, match=r"metadata\.url"):
        check_content("whatsapp", "image", "caption", {})
    with pytest.raises(InvalidInput, match="content_sid"):
        check_content("twilio", "template", None, {"name": "x", "language": "en"})
    check_content("whatsapp", "template", None, {"name": "x", "language": {"code": "en"}})


def test_telegram_429_waits_for_its_retry_after() -> None:
    body = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests",
        "parameters": {"retry_after": 9},
    }
    outcome = TelegramClient(SETTINGS).outcome(job(), 429, {}, json.dumps(body).encode())
    assert (outcome.kind, outcome.retry_after) == ("retry", 9.0)


def test_whatsapp_rate_limit_codes_retry_even_under_a_400() -> None:
    body = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
    client = WhatsAppClient(SETTINGS)
    assert client.outcome(job("whatsapp"), 400, {}, json.dumps(body).encode()).kind == "retry"
    body = {"error": {"message": "(#131026) Message undeliverable", "code": 131026}}
    assert client.outcome(job("whatsapp"), 400, {}, json.dumps(body).encode()).kind == "failed"


def test_twilio_429_takes_its_retry_after_header() -> None:
    outcome = TwilioClient(SETTINGS).outcome(job("twilio"), 429, {"retry-after": "3"}, b"{}")
    assert (outcome.kind, outcome.retry_after) == ("retry", 3.0)


def test_the_telegram_token_is_in_the_url_only() -> None:
    request = TelegramClient(SETTINGS).request(job())
    assert "1:x" in request.url and b"1:x" not in (request.content or b"")
