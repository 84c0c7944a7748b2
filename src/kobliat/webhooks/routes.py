"""Inbound webhooks (no API key: each channel's own signature).

Every POST is handled the same way: refuse when the channel has no secret configured (503,
so providers that retry deliver once it is set) or the request has no signature header (401,
before a byte of the body is read), verify the signature over the raw bytes (401, nothing
stored), parse (400, nothing stored), then store and process in one transaction and answer 200
only once the delivery is durable. Bodies are capped while they stream in (`asgi.LimitBodies`,
413), and an unavailable database is a 503 with Retry-After (`problems`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import SecretStr

from kobliat import metrics, tracing
from kobliat.bootstrap import Container
from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import PayloadError
from kobliat.db.types import utcnow
from kobliat.http import container
from kobliat.inbox import group_commit
from kobliat.inbox import service as inbox
from kobliat.inbox.model import Delivery
from kobliat.problems import Problem, documented
from kobliat.webhooks.headers import refuse_repeated_headers

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(refuse_repeated_headers)]
)

_COMMON_HEADERS = ("content-type", "user-agent")
# Not configured or database down (503), unsigned (401), too big (413) or slow (408),
# unreadable (400): see the module docstring.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored durably; what the delivery held, once processed",
        "content": {
            "application/json": {
                "example": {
                    "status": "processed",
                    "delivery_key": "whatsapp:6a1f0c2e9b",
                    "messages": 1,
                    "duplicates": 0,
                    "statuses": 0,
                    "pending_statuses": 0,
                    "ignored": 0,
                }
            }
        },
    },
    **documented(400, 401, 408, 413, 503),
}


@router.get("/whatsapp", response_class=PlainTextResponse, responses=documented(403, 503))
def whatsapp_handshake(
    request: Request,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> PlainTextResponse:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
    settings = container(request).settings
    verify_token = _secret(settings.whatsapp_verify_token, "whatsapp", "WHATSAPP_VERIFY_TOKEN")
    answer = whatsapp.verify_handshake(mode, token, challenge, verify_token)
    if answer is None:
        raise Problem(403, "handshake-refused", "hub.mode or hub.verify_token does not match")
    return PlainTextResponse(answer)


@router.post("/whatsapp", responses=_REFUSALS)
async def whatsapp_webhook(request: Request) -> Response:
    """WhatsApp Cloud API: `X-Hub-Signature-256` over the raw body."""
    app = container(request)
    secret = _secret(app.settings.whatsapp_app_secret, "whatsapp", "WHATSAPP_APP_SECRET")
    header = _signature_header(request, "whatsapp", whatsapp.SIGNATURE_HEADER)
    body = await request.body()
    _check("whatsapp", whatsapp.verify_signature(body, header, secret), whatsapp.SIGNATURE_HEADER)
    kept = _kept(request, [*_COMMON_HEADERS, whatsapp.SIGNATURE_HEADER.lower()])
    return await _accept(app, Delivery("whatsapp", body, kept, utcnow()))


@router.post("/telegram", responses=_REFUSALS)
async def telegram_webhook(request: Request) -> Response:
    """Telegram Bot API: `X-Telegram-Bot-Api-Secret-Token` equals our secret token."""
    app = container(request)
    secret = _secret(app.settings.telegram_secret_token, "telegram", "TELEGRAM_SECRET_TOKEN")
    header = _signature_header(request, "telegram", telegram.SECRET_HEADER)
    _check("telegram", telegram.verify_signature(header, secret), telegram.SECRET_HEADER)
    body = await request.body()
    # The secret header is the credential itself: it is never stored.
    return await _accept(app, Delivery("telegram", body, _kept(request, _COMMON_HEADERS), utcnow()))


@router.post(
    "/twilio",
    response_class=Response,
    responses={200: {"content": {"text/xml": {"schema": {"type": "string"}}}}, **_REFUSALS},
)
async def twilio_webhook(request: Request) -> Response:
    """Twilio Messaging: `X-Twilio-Signature` over the URL Twilio called and the form fields."""
    app = container(request)
    secret = _secret(app.settings.twilio_auth_token, "twilio", "TWILIO_AUTH_TOKEN")
    header = _signature_header(request, "twilio", twilio.SIGNATURE_HEADER)
    body = await request.body()
    try:
        pairs = inbox.form_pairs(body)
    except PayloadError:
        pairs = []  # cannot be what Twilio signed: the check below fails
    url = signed_url(request, app.settings.public_url)
    _check("twilio", twilio.verify_signature(url, pairs, header, secret), twilio.SIGNATURE_HEADER)
    kept = _kept(request, [*_COMMON_HEADERS, twilio.SIGNATURE_HEADER.lower()])
    await _accept(app, Delivery("twilio", body, kept, utcnow()))
    # Empty TwiML: acknowledge without replying to the sender.
    return Response("<Response/>", media_type="text/xml")


@router.post("/generic", responses=_REFUSALS)
async def generic_webhook(request: Request) -> Response:
    """kobliat's own JSON format, signed with Standard Webhooks (see docs/webhooks.md)."""
    app = container(request)
    secret = _secret(app.settings.generic_webhook_secret, "generic", "GENERIC_WEBHOOK_SECRET")
    _signature_header(request, "generic", "webhook-signature")
    body = await request.body()
    try:
        valid = generic.verify_signature(body, request.headers, secret)
    except ValueError as exc:  # the configured secret is not `whsec_` + base64
        raise Problem(
            503, "channel-misconfigured", f"KOBLIAT_GENERIC_WEBHOOK_SECRET is unusable: {exc}"
        ) from exc
    _check("generic", valid, "webhook-signature")
    names = [*_COMMON_HEADERS, "webhook-id", "webhook-timestamp", "webhook-signature"]
    return await _accept(app, Delivery("generic", body, _kept(request, names), utcnow()))


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio signed: KOBLIAT_PUBLIC_URL + path (+ query) when set, else the request's."""
    if not public_url:
        return str(request.url)
    url = public_url.rstrip("/") + request.url.path
    return f"{url}?{request.url.query}" if request.url.query else url


async def _accept(app: Container, delivery: Delivery) -> Response:
    try:
        with tracing.span("kobliat.ingest", channel=delivery.channel) as span:
            receipt = await group_commit.accept(app.ingest_writer, app.db, delivery, app.settings)
            span.set_attribute("kobliat.ingest.status", receipt.status)
    except PayloadError as exc:
        metrics.WEBHOOKS.labels(delivery.channel, "malformed").inc()
        raise Problem(400, "malformed-payload", str(exc)) from exc
    metrics.WEBHOOKS.labels(delivery.channel, receipt.status).inc()
    answer: dict[str, Any] = {"status": receipt.status, "delivery_key": receipt.delivery_key}
    if receipt.outcome is not None:
        outcome = receipt.outcome
        answer.update(
            messages=outcome.messages,
            duplicates=outcome.duplicates,
            statuses=outcome.statuses,
            pending_statuses=outcome.pending_statuses,
            ignored=outcome.ignored,
        )
    return JSONResponse(answer)


def _secret(value: SecretStr | None, channel: str, setting: str) -> str:
    if value is None or not value.get_secret_value():
        metrics.WEBHOOKS.labels(channel, "not-configured").inc()
        raise Problem(
            503,
            "channel-not-configured",
            f"the {channel} channel is not configured: set KOBLIAT_{setting} to accept it",
        )
    return value.get_secret_value()


def _signature_header(request: Request, channel: str, name: str) -> str:
    """The signature header, or a 401 before the body is read (no credential, no reading)."""
    header = request.headers.get(name)
    if header is None:
        metrics.WEBHOOKS.labels(channel, "missing-signature").inc()
        raise Problem(401, "missing-signature", f"the {name} header is missing")
    return header


def _check(channel: str, valid: bool, name: str) -> None:
    if not valid:
        metrics.WEBHOOKS.labels(channel, "invalid-signature").inc()
        raise Problem(401, "invalid-signature", f"the {name} header does not match this request")


def _kept(request: Request, names: Iterable[str]) -> dict[str, str]:
    return {name: request.headers[name] for name in names if name in request.headers}
