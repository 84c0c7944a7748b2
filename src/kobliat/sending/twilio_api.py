"""Twilio Programmable Messaging: POST form data to
{base}/2010-04-01/Accounts/{sid}/Messages.json with HTTP basic auth (SMS and WhatsApp)."""

from __future__ import annotations

import json
from typing import Final

from kobliat.sending.clients import Pace, Request, load, retry_after, transient
from kobliat.sending.model import Job, Outcome
from kobliat.settings import Settings

SENDER_RATE = 10.0  # per sending number; Twilio queues beyond its own per-sender rate anyway


class TwilioClient:
    """Sends from the conversation's Twilio number under KOBLIAT_TWILIO_ACCOUNT_SID."""

    provider: Final = "twilio"
    resend_safe = False

    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_account_sid is not None and settings.twilio_auth_token is not None
        self._sid = settings.twilio_account_sid
        self._token = settings.twilio_auth_token.get_secret_value()
        self._url = (
            f"{settings.twilio_api_url.rstrip('/')}/2010-04-01/Accounts/{self._sid}/Messages.json"
        )
        # Status callbacks come back to kobliat's own Twilio webhook, when its URL is known.
        public = settings.public_url
        self._callback = f"{public.rstrip('/')}/webhooks/twilio" if public else None

    def request(self, job: Job) -> Request:
        """The Messages resource create request."""
        form = [("To", job.route.to), ("From", job.route.endpoint)]
        meta = job.metadata
        if job.content_type == "template":
            form.append(("ContentSid", meta["content_sid"]))
            if meta.get("content_variables") is not None:
                form.append(("ContentVariables", json.dumps(meta["content_variables"])))
        elif job.body:
            form.append(("Body", job.body))
        if job.content_type in ("image", "audio", "video", "file"):
            form.append(("MediaUrl", meta["url"]))
        if self._callback:
            form.append(("StatusCallback", self._callback))
        return Request(url=self._url, form=form, auth=(self._sid, self._token))

    def outcome(self, job: Job, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        """Read Twilio's answer: 201 with the Message resource, or an error object."""
        answer = load(body)
        if 200 <= status < 300:
            sid = answer.get("sid")
            if isinstance(sid, str):
                return Outcome("sent", external_message_id=sid)
            return Outcome("unknown", error={"http_status": status, "message": "no sid returned"})
        error = {
            "http_status": status,
            "code": answer.get("code"),
            "message": answer.get("message"),
            "more_info": answer.get("more_info"),
        }
        error = {k: v for k, v in error.items() if v is not None}
        if transient(status):
            return Outcome("retry", error=error, retry_after=retry_after(headers))
        return Outcome("failed", error=error)

    def paces(self, job: Job) -> list[Pace]:
        """Per sending number."""
        return [Pace(f"twilio:{job.route.endpoint}", SENDER_RATE, SENDER_RATE)]
