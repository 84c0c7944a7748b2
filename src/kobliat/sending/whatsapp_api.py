"""WhatsApp Cloud API: POST {base}/{phone_number_id}/messages with a bearer token."""

from __future__ import annotations

from typing import Any, Final

from kobliat.sending.clients import Pace, Request, json_body, load, retry_after, transient
from kobliat.sending.model import Job, Outcome
from kobliat.settings import Settings

# Graph error codes that mean "not now" rather than "never": rate limits (4, 80007, 130429,
# 131056 pair rate), temporary failures (1, 2, 131000, 131016).
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056})
NUMBER_RATE = 80.0  # messages per second per business number (Cloud API default throughput)
_MEDIA = {"image": "image", "audio": "audio", "video": "video", "file": "document"}


class WhatsAppClient:
    """Sends through the WhatsApp Cloud API."""

    provider: Final = "whatsapp"
    resend_safe = False

    def __init__(self, settings: Settings) -> None:
        assert settings.whatsapp_access_token is not None
        self._base = settings.whatsapp_api_url.rstrip("/")
        self._token = settings.whatsapp_access_token.get_secret_value()

    def request(self, job: Job) -> Request:
        """The Graph API request for this job."""
        route = job.route
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "group" if route.group else "individual",
            "to": route.to,
            **content(job),
        }
        if route.reply_to:
            body["context"] = {"message_id": route.reply_to}
        return Request(
            url=f"{self._base}/{route.endpoint}/messages",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
            content=json_body(body),
        )

    def outcome(self, job: Job, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        """Read the Graph API's answer."""
        answer = load(body)
        if 200 <= status < 300:
            sent = answer.get("messages")
            if isinstance(sent, list) and sent and isinstance(sent[0].get("id"), str):
                return Outcome("sent", external_message_id=sent[0]["id"])
            return Outcome("unknown", error=_error(status, {"message": "no message id returned"}))
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        assert isinstance(error, dict)
        details = _error(status, error)
        if transient(status) or error.get("code") in RETRYABLE_CODES:
            return Outcome("retry", error=details, retry_after=retry_after(headers))
        return Outcome("failed", error=details)

    def paces(self, job: Job) -> list[Pace]:
        """Throughput per business number."""
        return [Pace(f"whatsapp:{job.route.endpoint}", NUMBER_RATE, NUMBER_RATE)]


def content(job: Job) -> dict[str, Any]:
    """The `type` and the type's object for a message."""
    meta, kind = job.metadata, job.content_type
    if kind == "text":
        return {"type": "text", "text": {"preview_url": False, "body": job.body}}
    if kind in _MEDIA:
        media: dict[str, Any] = {"link": meta["url"]}
        if job.body and kind != "audio":  # audio takes no caption
            media["caption"] = job.body
        if kind == "file" and meta.get("filename"):
            media["filename"] = meta["filename"]
        return {"type": _MEDIA[kind], _MEDIA[kind]: media}
    if kind == "location":
        place = {k: meta[k] for k in ("latitude", "longitude", "name", "address") if k in meta}
        return {"type": "location", "location": place}
    language = meta["language"]
    template: dict[str, Any] = {
        "name": meta["name"],
        "language": language if isinstance(language, dict) else {"code": language},
    }
    if meta.get("components"):
        template["components"] = meta["components"]
    return {"type": "template", "template": template}


def _error(status: int, error: dict[str, Any]) -> dict[str, Any]:
    found = {
        "http_status": status,
        "code": error.get("code"),
        "message": error.get("message"),
        "details": (error.get("error_data") or {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None,
    }
    return {k: v for k, v in found.items() if v is not None}
