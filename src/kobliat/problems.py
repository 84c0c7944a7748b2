"""RFC 9457 problem+json responses, and the one place errors become them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Send

from kobliat.db import dialect
from kobliat.errors import DomainError
from kobliat.openapi_glossary import describe_parameters
from kobliat.pagination import CursorError

log = structlog.get_logger(__name__)
MEDIA_TYPE = "application/problem+json"
_SCHEMA_REF = {"$ref": "#/components/schemas/ProblemDetails"}
# How long a client is asked to wait when the database is unavailable (a restart, a failover).
RETRY_AFTER_SECONDS = 5


class Problem(Exception):
    """An HTTP error raised at the edge (auth, signatures, missing configuration); `extra`
    goes into the body, `headers` onto the answer."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; `code` becomes the `type` and is also given as `code`."""
    body = _problem_body(status, code, detail, instance=instance, **extra)
    return JSONResponse(
        body, status_code=status, media_type=MEDIA_TYPE, headers=_headers(status, headers)
    )


async def send_problem(
    send: Send,
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> None:
    """Answer a problem straight over ASGI (from middleware, before or without the app);
    `close` ends the connection after it (the request body was left unread)."""
    content = json.dumps(_problem_body(status, code, detail)).encode()
    sent = _headers(status, headers)
    sent.update({"content-type": MEDIA_TYPE, "content-length": str(len(content))})
    if close:
        sent["connection"] = "close"
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sent.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


def _problem_body(
    status: int, code: str, detail: str, *, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def _headers(status: int, headers: Mapping[str, str] | None) -> dict[str, str]:
    sent = dict(headers or {})
    if status == 401:
        sent.setdefault("WWW-Authenticate", "Bearer")
    return sent


def unavailable(detail: str) -> tuple[int, str, str, dict[str, str]]:
    """The 503 answer for a database that cannot be reached: status, code, detail, headers."""
    return 503, "database-unavailable", detail, {"Retry-After": str(RETRY_AFTER_SECONDS)}


class OutageLog:
    """Says that the database is unavailable once per interval, with how many requests were
    refused meanwhile, instead of a traceback per request."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last = -interval
        self._refused = 0

    def refused(self, exc: BaseException) -> None:
        """Count one refused request; log when the interval has passed since the last line."""
        self._refused += 1
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        log.warning(
            "database unavailable; answering 503",
            error=dialect.describe_unavailable(exc),
            refused=self._refused,
            interval_s=self._interval,
        )
        self._last, self._refused = now, 0


OUTAGES = OutageLog()


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FieldError(BaseModel):
    """One input a request validation error is about."""

    location: str = Field(description="where, e.g. `body.participants.0.customer_id`")
    message: str = Field(description="what is wrong with it")


class ProblemDetails(BaseModel):
    """The body of every error answer (RFC 9457), as the OpenAPI schema documents it."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the problem (`/problems/{code}` describes it)")
    title: str = Field(description="the HTTP status's reason phrase")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what was wrong, for a human")
    code: str = Field(description="the rule or check that refused the request, for a program")
    instance: str | None = Field(default=None, description="the request path it concerns")
    errors: list[FieldError] | None = Field(default=None, description="validation errors only")


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem statuses a route answers (401 and 422 come free)."""
    return {
        status: {"description": _TITLES[status], "content": {MEDIA_TYPE: {"schema": _SCHEMA_REF}}}
        for status in statuses
    }


def install(app: FastAPI) -> None:
    """Map every error the app can raise to problem+json, and say so in the OpenAPI schema."""
    _document(app)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, instance=request.url.path)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.code,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(CursorError)
    async def _cursor(request: Request, exc: CursorError) -> JSONResponse:
        return problem_response(400, "invalid-cursor", str(exc), instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        content_type = request.headers.get("content-type", "")
        if any(e["location"] == "body" for e in errors) and "json" not in content_type:
            detail += "; request bodies are JSON: send Content-Type: application/json"
        return problem_response(
            422, "validation-error", detail, instance=request.url.path, errors=errors
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            exc.status_code, code, str(exc.detail), instance=request.url.path, headers=headers
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # Handled here, not by the catch-all below: that one makes the server drop the
        # connection, and an outage must leave keep-alive connections usable.
        if not dialect.is_unavailable(exc):
            return _internal_error(request, exc)
        OUTAGES.refused(exc)
        status, code, detail, headers = unavailable("the database is unavailable; try again")
        return problem_response(status, code, detail, instance=request.url.path, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem_response(
        500,
        "internal-error",
        "an unexpected error occurred; it has been logged",
        instance=request.url.path,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the path answers (RFC 9110). Starlette names only the first route whose
    path matched, and FastAPI has a route per method (GET /customers, POST /customers)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def _document(app: FastAPI) -> None:
    """Make the OpenAPI schema honest about errors: every 4xx/5xx it lists is problem+json
    (FastAPI documents its 422 as its own JSON shape), every operation that needs the API key
    lists the 401 it answers without one, and every one with a body the 400 for a body FastAPI
    cannot parse."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()  # FastAPI caches it: described once
        if fresh:
            _describe_problems(schema)
            describe_parameters(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_EXAMPLE_CODES = {
    400: ("invalid-cursor", "the cursor is not one this API gave out"),
    401: ("missing-api-key", "send the API key as `Authorization: Bearer <key>`"),
    403: ("handshake-refused", "the verify token does not match"),
    404: ("conversation-not-found", "no conversation 9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"),
    409: (
        "direct-needs-exactly-two-participants",
        "a direct conversation has exactly 2 participants",
    ),
    408: ("request-timeout", "the request body did not arrive within 60 s"),
    413: ("payload-too-large", "the body is larger than the limit of this endpoint"),
    415: ("unsupported-media-type", "send the body as application/json"),
    422: ("invalid-phone-number", "'12' is not a phone number with a country code"),
    503: ("database-unavailable", "the database is not answering; retry later"),
}


def _example(status: int) -> dict[str, Any]:
    code, detail = _EXAMPLE_CODES.get(status, ("internal-error", "an unexpected error occurred"))
    return {
        "type": f"/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": "/conversations",
    }


def _describe_problems(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for fastapi_shape in ("HTTPValidationError", "ValidationError"):
        components.pop(fastapi_shape, None)
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["ProblemDetails"] = problem
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status in _edge_statuses(operation):
                responses.setdefault(str(status), {"description": _TITLES[status]})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {
                        MEDIA_TYPE: {"schema": _SCHEMA_REF, "example": _example(int(status))}
                    }
                if status == "503":
                    response.setdefault("headers", {})["Retry-After"] = _RETRY_AFTER_HEADER


_RETRY_AFTER_HEADER = {
    "description": "seconds to wait before trying again (sent when the database is unavailable)",
    "schema": {"type": "integer", "example": RETRY_AFTER_SECONDS},
}


def _edge_statuses(operation: dict[str, Any]) -> list[int]:
    """The problems an operation answers before or around its own code: an operation that
    needs the API key answers 401 without one, and 503 while the database (which it reads) is
    unavailable; one that takes a body answers 400 for bytes that are not UTF-8 JSON at all,
    413 for a body past the size limit and 408 for one that does not arrive in time."""
    statuses = []
    if operation.get("security"):
        statuses += [401, 503]
    if "requestBody" in operation:
        statuses += [400, 408, 413]
    return statuses
