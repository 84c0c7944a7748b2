"""A real `kobliat serve` holds up against oversized, slow and idle clients: bodies are capped
while they stream in (memory does not grow with what a client sends), credentials in headers are
checked before any body is read, and slow request heads and bodies are cut off."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kobliat.channels.samples import signing
from kobliat.channels.samples import whatsapp as wa
from tests.e2e.webhooks import API_KEY, GENERIC_SECRET, TELEGRAM_SECRET, WHATSAPP_SECRET
from tests.support.serve import Served, serving

SIXTY_MB = 60 * 1024 * 1024
_FRAME = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # one 64 KiB chunk


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    """`kobliat serve` on SQLite with the default limits and short timeouts for slow clients."""
    env = {
        "KOBLIAT_DATABASE_URL": sqlite_url,
        "KOBLIAT_API_KEYS": API_KEY,
        "KOBLIAT_WHATSAPP_APP_SECRET": WHATSAPP_SECRET,
        "KOBLIAT_TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "KOBLIAT_GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
        "KOBLIAT_HTTP_HEADER_TIMEOUT_SECONDS": "1",
        "KOBLIAT_HTTP_BODY_TIMEOUT_SECONDS": "2",
    }
    with serving(tmp_path, env) as server:
        yield server


def send_chunked(port: int, path: str, headers: dict[str, str], *, total: int) -> tuple[int, int]:
    """POST `total` bytes chunked, stopping when the server answers or closes; returns the
    status and how many body bytes went out."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(2)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    sock.sendall(
        ("\r\n".join([*lines, *(f"{k}: {v}" for k, v in headers.items())]) + "\r\n\r\n").encode()
    )
    sent = 0
    try:
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(_FRAME)
            sent += 0x10000
        if sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer is waiting
    answer = b""
    sock.settimeout(30)
    while b"\r\n" not in answer:
        data = sock.recv(4096)
        assert data, f"closed without an answer after {sent} bytes"
        answer += data
    sock.close()
    return int(answer.split(b" ", 2)[1]), sent


def test_sixty_megabyte_bodies_are_refused_and_memory_does_not_grow(served: Served) -> None:
    bogus = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    telegram_wrong = {"X-Telegram-Bot-Api-Secret-Token": "not-the-token"}
    generic = signing.generic_headers(b"{}", GENERIC_SECRET, msg_id="m1", timestamp=_now())
    cases = [
        ("/webhooks/whatsapp", {}, 401),  # no signature: refused before the body is read
        ("/webhooks/telegram", telegram_wrong, 401),  # the secret header is checked first
        ("/webhooks/whatsapp", bogus, 413),  # a signature to check: read up to 8 MiB only
        ("/webhooks/generic", generic, 413),
        ("/customers", {}, 401),  # no key: nothing read
        ("/customers", {"Authorization": "Bearer wrong"}, 401),
        ("/customers", {"Authorization": f"Bearer {API_KEY}"}, 413),  # REST: 1 MiB
    ]
    with httpx.Client(base_url=served.base) as http:
        assert http.get("/healthz").status_code == 200
    before = served.peak_rss_kib()
    for path, headers, expected in cases:
        status, sent = send_chunked(served.port, path, headers, total=SIXTY_MB)
        assert status == expected, (path, headers)
        assert sent < SIXTY_MB, f"{path}: the whole body was read before the {status}"
    grown_mib = (served.peak_rss_kib() - before) / 1024
    # Buffering one 60 MB body would add at least 60 MiB; the caps keep it to a few MiB.
    assert grown_mib < 40, f"peak RSS grew by {grown_mib:.0f} MiB"
    with httpx.Client(base_url=served.base) as http:
        body = wa.single(
            wa.message_item("text", {"body": "hi"}, message_id="wamid.after-the-flood")
        )
        answer = http.post(
            "/webhooks/whatsapp",
            content=body,
            headers=signing.whatsapp_headers(body, WHATSAPP_SECRET),
        )
        assert answer.status_code == 200, answer.text


def test_a_declared_oversized_body_is_refused_before_it_is_sent(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        sock.sendall(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"payload-too-large" in answer and b"connection: close" in answer.lower()


def test_headers_trickling_in_are_cut_off(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(1)
        sock.sendall(b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        deadline = time.monotonic() + 30
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"a")
                closed = select.select([sock], [], [], 0.2)[0] != []
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, "a client trickling its headers still holds the connection after 30 s"


def test_an_idle_connection_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408")


def test_oversized_headers_are_refused(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 400")


def test_a_body_trickling_in_is_cut_off_with_a_408_problem(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(30)
        sock.sendall(
            f"POST /customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"request-timeout" in answer


def _read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while data := sock.recv(65536):
        answer += data
    return answer


def _now() -> object:
    from datetime import UTC, datetime

    return datetime.now(UTC)
