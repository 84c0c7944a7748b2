"""One shape for every provider's send API: build the HTTP request for a job, read the answer.

Providers differ in URL, auth, body and error format; the sender only sees `Client`.
Credentials live in the request headers and URL only: errors and logs never carry them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from kobliat.sending.model import Job, Outcome, Provider
from kobliat.settings import Settings


@dataclass(frozen=True, slots=True)
class Request:
    """A POST to a provider. `url` may hold a secret (Telegram's token): never log it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    form: list[tuple[str, str]] | None = None
    auth: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Pace:
    """A rate a send must keep: at most `rate` per second per `key`, in bursts of `burst`."""

    key: str
    rate: float
    burst: float


class Client(Protocol):
    """What the sender needs of a provider."""

    @property
    def provider(self) -> Provider: ...

    # True when the provider recognises a repeated request, so resending after an ambiguous
    # failure cannot deliver the message twice.
    resend_safe: bool

    def request(self, job: Job) -> Request: ...
    def outcome(self, job: Job, status: int, headers: dict[str, str], body: bytes) -> Outcome: ...
    def paces(self, job: Job) -> list[Pace]: ...


def json_body(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def load(body: bytes) -> dict[str, Any]:
    """The JSON object of a provider's answer, or {} when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def retry_after(headers: dict[str, str]) -> float | None:
    """The Retry-After header in seconds (the delta-seconds form providers use)."""
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def transient(status: int) -> bool:
    """HTTP statuses worth trying again: rate limited, or the provider failing."""
    return status == 429 or status >= 500


def build(settings: Settings, available: frozenset[Provider]) -> dict[str, Client]:
    """A client for every provider whose sending is configured."""
    from kobliat.channels import registry

    return {name: registry.get(name).sender(settings) for name in sorted(available)}
