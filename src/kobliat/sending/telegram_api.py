"""Telegram Bot API: POST {base}/bot{token}/sendMessage (sendPhoto, sendAudio, sendVideo,
sendDocument, sendLocation) with a JSON body."""

from __future__ import annotations

from typing import Any, Final

from kobliat.sending.clients import Pace, Request, json_body, load, retry_after, transient
from kobliat.sending.model import Job, Outcome
from kobliat.settings import Settings

# Telegram's published limits: about 30 messages/s per bot, 1/s per chat, 20/min per group.
BOT_RATE = 30.0
CHAT_RATE = 1.0
GROUP_RATE = 20.0 / 60.0
_MEDIA = {
    "image": ("sendPhoto", "photo"),
    "audio": ("sendAudio", "audio"),
    "video": ("sendVideo", "video"),
    "file": ("sendDocument", "document"),
}


class TelegramClient:
    """Sends as the bot whose token is KOBLIAT_TELEGRAM_BOT_TOKEN."""

    provider: Final = "telegram"
    resend_safe = False

    def __init__(self, settings: Settings) -> None:
        assert settings.telegram_bot_token is not None
        self._base = settings.telegram_api_url.rstrip("/")
        self._token = settings.telegram_bot_token.get_secret_value()

    def request(self, job: Job) -> Request:
        """The Bot API method call for this job."""
        method, fields = method_for(job)
        body: dict[str, Any] = {"chat_id": chat_id(job.route.to), **fields}
        if job.route.reply_to:
            body["reply_parameters"] = {"message_id": int(job.route.reply_to.rsplit(":", 1)[1])}
        return Request(
            url=f"{self._base}/bot{self._token}/{method}",
            headers={"Content-Type": "application/json"},
            content=json_body(body),
        )

    def outcome(self, job: Job, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        """Read the Bot API's answer: `{"ok": true, "result": Message}` or an error."""
        answer = load(body)
        result = answer.get("result")
        if answer.get("ok") is True and isinstance(result, dict):
            chat = result.get("chat") if isinstance(result.get("chat"), dict) else {}
            assert isinstance(chat, dict)
            # The same shape as inbound Telegram message ids: chat id, colon, message id.
            return Outcome(
                "sent", external_message_id=f"{chat.get('id')}:{result.get('message_id')}"
            )
        code = answer.get("error_code", status)
        error = {"http_status": status, "code": code, "message": answer.get("description")}
        error = {k: v for k, v in error.items() if v is not None}
        parameters = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
        assert isinstance(parameters, dict)
        wait = parameters.get("retry_after")
        if transient(status) or (isinstance(code, int) and transient(code)):
            seconds = float(wait) if isinstance(wait, int | float) else retry_after(headers)
            return Outcome("retry", error=error, retry_after=seconds)
        if 200 <= status < 300:  # a 2xx that is not a sent message: it may have been sent
            return Outcome("unknown", error=error)
        return Outcome("failed", error=error)

    def paces(self, job: Job) -> list[Pace]:
        """Per bot, and per chat (stricter in groups)."""
        chat = job.route.to
        per_chat = GROUP_RATE if job.route.group or chat.startswith("-") else CHAT_RATE
        return [
            Pace(f"telegram:{job.route.endpoint}", BOT_RATE, BOT_RATE),
            Pace(f"telegram:{job.route.endpoint}:{chat}", per_chat, 1.0),
        ]


def chat_id(value: str) -> int | str:
    """Numeric chat ids as numbers, `@username`s as they are."""
    try:
        return int(value)
    except ValueError:
        return value


def method_for(job: Job) -> tuple[str, dict[str, Any]]:
    """The Bot API method and its fields for a message."""
    meta, kind = job.metadata, job.content_type
    if kind == "text":
        return "sendMessage", {"text": job.body}
    if kind in _MEDIA:
        method, field = _MEDIA[kind]
        fields: dict[str, Any] = {field: meta["url"]}
        if job.body:
            fields["caption"] = job.body
        return method, fields
    place = {"latitude": meta["latitude"], "longitude": meta["longitude"]}
    return "sendLocation", place
