"""A local fake of the providers' send APIs (WhatsApp Cloud, Telegram Bot, Twilio, generic).

It checks every request as the providers document it (method, path, auth, content type and
body) and answers with their documented success bodies, or with scripted errors. Requests it
cannot accept are answered 400 and listed in `malformed`, which tests assert is empty.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from kobliat.channels import generic

WA_TOKEN = "EAAG-test-access-token"
TG_TOKEN = "7012345678:AAH-test-bot-token"
TW_SID = "ACe6d6d6ba1e4f4c13f717257e56bfe59a"
WA_TYPES = {"text", "image", "audio", "video", "document", "location", "template"}
TG_METHODS = {
    "sendMessage": "text",
    "sendPhoto": "photo",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendDocument": "document",
    "sendLocation": "latitude",
}


@dataclass
class Call:
    """One request a fake provider accepted."""

    provider: str
    path: str
    headers: dict[str, str]
    body: bytes
    fields: Any  # parsed JSON object, or the form's (name, value) pairs
    external_id: str = ""  # set once answered with success
    planned_id: str = ""  # the id the success answer carries, known on arrival

    def text(self) -> str | None:
        """The message text or caption, whatever the provider calls it."""
        if self.provider == "twilio":
            return dict(self.fields).get("Body")
        if self.provider == "whatsapp":
            kind = self.fields["type"]
            part = self.fields.get(kind, {})
            return part.get("body") or part.get("caption")
        if self.provider == "telegram":
            return self.fields.get("text") or self.fields.get("caption")
        body: str | None = self.fields.get("body")
        return body


@dataclass
class Answer:
    """A scripted answer: status, JSON body, headers; `drop` closes without answering."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class FakeProviders:
    """State of the fake: what it accepted, and what it will answer next."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    hold: threading.Event | None = None  # when set: wait for it before answering
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    twilio_token: str = ""
    generic_secret: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def settings(self) -> dict[str, Any]:
        """Settings pointing kobliat's sending at this fake."""
        return {
            "whatsapp_access_token": WA_TOKEN,
            "whatsapp_api_url": f"{self.url}/whatsapp/v24.0",
            "telegram_bot_token": TG_TOKEN,
            "telegram_api_url": f"{self.url}/telegram",
            "twilio_account_sid": TW_SID,
            "twilio_api_url": f"{self.url}/twilio",
            "generic_outbound_url": f"{self.url}/generic/replies",
        }

    def accepted(self, provider: str | None = None) -> list[Call]:
        """Accepted requests (answered with success), in arrival order."""
        with self.lock:
            return [c for c in self.calls if provider in (None, c.provider) and c.external_id]

    def script(self, provider: str, *answers: Answer) -> None:
        """Answer the provider's next requests with these, before succeeding again."""
        with self.lock:
            self.scripts.setdefault(provider, []).extend(answers)

    def next_id(self) -> int:
        """A fresh number for provider ids."""
        with self.lock:
            return next(self._ids)


def check_whatsapp(path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The request as the Cloud API documents it, or AssertionError."""
    parts = path.split("/")
    assert len(parts) == 5 and parts[:3] == ["", "whatsapp", "v24.0"] and parts[4] == "messages"
    assert parts[3].isdigit(), "phone number id"
    assert headers.get("authorization") == f"Bearer {WA_TOKEN}"
    assert headers.get("content-type", "").startswith("application/json")
    data = json.loads(body)
    kind = data.get("type")
    assert data.get("messaging_product") == "whatsapp"
    assert data.get("recipient_type") in ("individual", "group")
    assert isinstance(data.get("to"), str) and data["to"]
    assert kind in WA_TYPES and isinstance(data.get(kind), dict)
    assert set(data) <= {"messaging_product", "recipient_type", "to", "type", "context", kind}
    part = data[kind]
    if kind == "text":
        assert isinstance(part.get("body"), str) and set(part) <= {"body", "preview_url"}
    elif kind in ("image", "audio", "video", "document"):
        assert part.get("link", "").startswith("https://")
        assert set(part) <= {"link", "caption", "filename"}
        assert kind != "audio" or "caption" not in part
    elif kind == "location":
        assert isinstance(part["latitude"], float | int) and isinstance(
            part["longitude"], float | int
        )
    else:
        assert isinstance(part.get("name"), str) and isinstance(part["language"].get("code"), str)
    if "context" in data:
        assert set(data["context"]) == {"message_id"}
    return data


def check_telegram(path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The request as the Bot API documents it, or AssertionError."""
    prefix = f"/telegram/bot{TG_TOKEN}/"
    assert path.startswith(prefix)
    method = path.removeprefix(prefix)
    assert method in TG_METHODS
    assert headers.get("content-type", "").startswith("application/json")
    data = json.loads(body)
    assert isinstance(data.get("chat_id"), int | str)
    assert TG_METHODS[method] in data
    if method == "sendLocation":
        assert isinstance(data["longitude"], float | int)
    if "reply_parameters" in data:
        assert isinstance(data["reply_parameters"].get("message_id"), int)
    data["_method"] = method
    return data


def check_twilio(
    path: str, headers: dict[str, str], body: bytes, token: str
) -> list[tuple[str, str]]:
    """The request as the Messages resource documents it, or AssertionError."""
    assert path == f"/twilio/2010-04-01/Accounts/{TW_SID}/Messages.json"
    expected = "Basic " + base64.b64encode(f"{TW_SID}:{token}".encode()).decode()
    assert headers.get("authorization") == expected
    assert headers.get("content-type") == "application/x-www-form-urlencoded"
    pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    names = [name for name, _ in pairs]
    allowed = {"To", "From", "Body", "MediaUrl", "StatusCallback", "ContentSid", "ContentVariables"}
    assert set(names) <= allowed and "To" in names and "From" in names
    assert {"Body", "MediaUrl", "ContentSid"} & set(names)
    return pairs


def success(state: FakeProviders, provider: str, fields: Any) -> tuple[int, dict[str, Any], str]:
    """The provider's documented success answer, and the id it gives the message."""
    n = state.next_id()
    if provider == "whatsapp":
        wamid = f"wamid.FAKE{n}"
        to = fields["to"]
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }
        return 200, answer, wamid
    if provider == "telegram":
        chat = fields["chat_id"]
        result = {
            "message_id": n,
            "from": {"id": 7012345678, "is_bot": True, "first_name": "Clinic Helper"},
            "chat": {"id": chat, "type": "private"},
            "date": int(time.time()),
        }
        return 200, {"ok": True, "result": result}, f"{chat}:{n}"
    if provider == "twilio":
        sid = f"SM{n:032x}"
        form = dict(fields)
        answer = {
            "sid": sid,
            "account_sid": TW_SID,
            "to": form["To"],
            "from": form["From"],
            "body": form.get("Body", ""),
            "status": "queued",
            "num_media": "1" if "MediaUrl" in form else "0",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
        }
        return 201, answer, sid
    return 200, {}, str(fields["id"])


@contextmanager
def running_providers(*, twilio_token: str, generic_secret: str) -> Iterator[FakeProviders]:
    """Serve the fake on a free 127.0.0.1 port for the duration of the block."""
    state = FakeProviders(twilio_token=twilio_token, generic_secret=generic_secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            provider = self.path.split("/")[1]
            try:
                fields = self._check(provider, headers, body)
            except (AssertionError, ValueError, KeyError, TypeError) as exc:
                with state.lock:
                    state.malformed.append(f"{self.path.split('/bot')[0]}: {exc!r} {body[:300]!r}")
                self._answer(400, {"error": "malformed request"})
                return
            call = Call(provider, self.path, headers, body, fields)
            with state.lock:
                scripted = state.scripts.get(provider, [])
                answer = scripted.pop(0) if scripted else None
            if answer is None:
                status, payload, call.planned_id = success(state, provider, fields)
            with state.lock:
                state.calls.append(call)
            if state.delay:
                time.sleep(state.delay)
            if state.hold is not None:
                state.hold.wait(30)
            if answer is not None and answer.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if answer is not None:
                self._answer(answer.status, answer.body or {}, answer.headers)
                return
            call.external_id = call.planned_id  # answered (the sender may be gone by now)
            self._answer(status, payload)

        def _check(self, provider: str, headers: dict[str, str], body: bytes) -> Any:
            if provider == "whatsapp":
                return check_whatsapp(self.path, headers, body)
            if provider == "telegram":
                return check_telegram(self.path, headers, body)
            if provider == "twilio":
                return check_twilio(self.path, headers, body, state.twilio_token)
            assert self.path == "/generic/replies"
            assert generic.verify_signature(body, headers, state.generic_secret)
            data = json.loads(body)
            assert headers["webhook-id"] == data["id"]
            return data

        def _answer(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            raw = json.dumps(payload).encode()
            with contextlib.suppress(OSError):  # the caller may have been killed meanwhile
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()


def whatsapp_error(code: int, message: str, *, status: int = 400) -> Answer:
    """A Graph API error object."""
    return Answer(
        status,
        {
            "error": {
                "message": f"(#{code}) {message}",
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": "AbCdEfGhIjK",
            }
        },
    )


def telegram_error(code: int, description: str, *, retry_after: int | None = None) -> Answer:
    """A Bot API error answer."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return Answer(code, body)


def twilio_error(code: int, message: str, *, status: int = 400) -> Answer:
    """A Twilio REST error object."""
    return Answer(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )
