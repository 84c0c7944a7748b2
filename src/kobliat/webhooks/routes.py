"""Inbound webhooks (no API key: each channel's own signature).

Every channel in the registry gets one POST route, `/webhooks/{name}`, handled the same way:
refuse when the channel has no secret configured (503, so providers that retry deliver once it
is set) or the request has no signature header (401, before a byte of the body is read), verify
the signature over the raw bytes (401, nothing stored), parse (400, nothing stored), then store
and process in one transaction and answer 200 only once the delivery is durable. Bodies are
capped while they stream in (`asgi.LimitBodies`, 413), and an unavailable database is a 503
with Retry-After (`problems`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import SecretStr

from kobliat import metrics, tracing
from kobliat.bootstrap import Container
from kobliat.channels import whatsapp
from kobliat.channels.records import PayloadError
from kobliat.channels.registry import CHANNELS, Channel
from kobliat.db.types import utcnow
from kobliat.http import container
from kobliat.inbox import group_commit
from kobliat.inbox.model import Delivery
from kobliat.problems import Problem, documented
from kobliat.settings import Settings
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
    verify_token = _configured(
        settings.whatsapp_verify_token, "whatsapp", "KOBLIAT_WHATSAPP_VERIFY_TOKEN"
    )
    answer = whatsapp.verify_handshake(mode, token, challenge, verify_token)
    if answer is None:
        raise Problem(403, "handshake-refused", "hub.mode or hub.verify_token does not match")
    return PlainTextResponse(answer)


def _webhook(channel: Channel) -> Callable[[Request], Awaitable[Response]]:
    """The POST handler of one channel: configured, signed, verified, then accepted."""

    async def receive(request: Request) -> Response:
        app = container(request)
        secret = _secret(app.settings, channel)
        _signature_header(request, channel)
        # Only a channel that signs the URL (Twilio) needs it spelt out.
        url = signed_url(request, app.settings.public_url) if channel.signs_url else ""
        if channel.header_only:  # nothing in the body is signed: refuse before reading it
            _verify(channel, b"", request, url, secret)
            body = await request.body()
        else:
            body = await request.body()
            _verify(channel, body, request, url, secret)
        kept = _kept(request, [*_COMMON_HEADERS, *channel.kept_headers])
        answer = await _accept(app, Delivery(channel.name, body, kept, utcnow()))
        if channel.acknowledgement is None:
            return answer
        content, media_type = channel.acknowledgement
        return Response(content, media_type=media_type)

    return receive


# The POST handler of each channel by path: the routes below (which document them in the
# OpenAPI schema) and `kobliat.webhooks.lane`, which calls them straight from the edge.
HANDLERS = {f"/webhooks/{name}": _webhook(channel) for name, channel in CHANNELS.items()}

for _channel in CHANNELS.values():
    router.add_api_route(
        f"/{_channel.name}",
        HANDLERS[f"/webhooks/{_channel.name}"],
        methods=["POST"],
        name=f"{_channel.name}_webhook",
        description=_channel.webhook_doc,
        responses=_REFUSALS,
        response_class=Response if _channel.acknowledgement else JSONResponse,
    )


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


def _secret(settings: Settings, channel: Channel) -> str:
    value: SecretStr | None = getattr(settings, channel.secret_setting)
    return _configured(value, channel.name, channel.secret_env)


def _configured(value: SecretStr | None, channel: str, env: str) -> str:
    if value is None or not value.get_secret_value():
        metrics.WEBHOOKS.labels(channel, "not-configured").inc()
        raise Problem(
            503,
            "channel-not-configured",
            f"the {channel} channel is not configured: set {env} to accept it",
        )
    return value.get_secret_value()


def _signature_header(request: Request, channel: Channel) -> None:
    """A 401 when the signature header is missing, before the body is read."""
    name = channel.signature_header
    if name not in request.headers:
        metrics.WEBHOOKS.labels(channel.name, "missing-signature").inc()
        raise Problem(401, "missing-signature", f"the {name} header is missing")


def _verify(channel: Channel, body: bytes, request: Request, url: str, secret: str) -> None:
    try:
        valid = channel.verify(body, request.headers, url, secret)
    except ValueError as exc:  # the configured secret is malformed (e.g. not whsec_ + base64)
        raise Problem(
            503, "channel-misconfigured", f"{channel.secret_env} is unusable: {exc}"
        ) from exc
    if not valid:
        metrics.WEBHOOKS.labels(channel.name, "invalid-signature").inc()
        name = channel.signature_header
        raise Problem(401, "invalid-signature", f"the {name} header does not match this request")


def _kept(request: Request, names: Iterable[str]) -> dict[str, str]:
    return {name: request.headers[name] for name in names if name in request.headers}
