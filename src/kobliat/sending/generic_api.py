"""The generic channel: replies are POSTed to KOBLIAT_GENERIC_OUTBOUND_URL in the generic JSON
format, signed with Standard Webhooks under KOBLIAT_GENERIC_WEBHOOK_SECRET."""

from __future__ import annotations

from typing import Any, Final

from kobliat.channels import generic
from kobliat.db.types import utcnow
from kobliat.events.envelope import isoformat
from kobliat.sending.clients import Pace, Request, json_body, load, retry_after, transient
from kobliat.sending.model import Job, Outcome
from kobliat.settings import Settings


class GenericClient:
    """Posts replies to the generic channel's own system."""

    provider: Final = "generic"
    # The webhook-id is the message id on every attempt, so the receiver can deduplicate.
    resend_safe = True

    def __init__(self, settings: Settings) -> None:
        assert settings.generic_outbound_url and settings.generic_webhook_secret
        self._url = settings.generic_outbound_url
        self._secret = settings.generic_webhook_secret.get_secret_value()

    def request(self, job: Job) -> Request:
        """The signed POST of the message in the generic format."""
        message: dict[str, Any] = {
            "id": str(job.message_id),
            "timestamp": isoformat(utcnow()),
            "content_type": job.content_type,
            "body": job.body,
            "metadata": job.metadata,
        }
        parties = job.route.parties
        for key in ("from", "to", "conversation"):
            if key in parties:
                message[key] = parties[key]
        if job.route.reply_to:
            message["reply_to"] = {"external_message_id": job.route.reply_to}
        raw = json_body(message)
        headers = generic.signed_headers(
            raw, self._secret, msg_id=str(job.message_id), timestamp=utcnow()
        )
        return Request(
            url=self._url, headers={**headers, "Content-Type": "application/json"}, content=raw
        )

    def outcome(self, job: Job, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        """2xx is accepted; the answer may name the receiver's own id for the message."""
        if 200 <= status < 300:
            own = load(body).get("id")
            external = own if isinstance(own, str) and own else str(job.message_id)
            return Outcome("sent", external_message_id=external)
        error = {"http_status": status, "message": body[:500].decode(errors="replace")}
        if transient(status):
            return Outcome("retry", error=error, retry_after=retry_after(headers))
        return Outcome("failed", error=error)

    def paces(self, job: Job) -> list[Pace]:
        """No published limit."""
        return []
