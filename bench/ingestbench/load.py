"""Phase 2's load: signed WhatsApp webhooks over keep-alive connections, and `kobliat serve`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.postgres import free_port

from ingestbench.common import (
    BIN,
    SECRET,
)
from ingestbench.machine import self_cpu
from kobliat.channels import whatsapp
from kobliat.channels.samples import whatsapp_messages
from kobliat.channels.samples.signing import whatsapp_headers


class Traffic:
    """Signed WhatsApp text webhooks: distinct wamids, known senders mostly, some new ones."""

    def __init__(self, *, port: int, known: int, new_share: float, seed: int = 7) -> None:
        self.port = port
        self.known = known
        self.new_share = new_share
        self.random = random.Random(seed)
        self.sequence = 0
        self.new_senders = 0  # built
        self.sent_new = 0  # handed to the load generator
        self.run = f"{os.getpid()}{int(time.time()) % 100000}"

    def _request(self, wa_id: str, name: str) -> bytes:
        self.sequence += 1
        body = whatsapp_messages.text(
            wa_id=wa_id,
            name=name,
            message_id=f"wamid.bench.{self.run}.{self.sequence}",
            timestamp=int(time.time()),
        )
        signature = whatsapp_headers(body, SECRET)[whatsapp.SIGNATURE_HEADER]
        head = (
            f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\n{whatsapp.SIGNATURE_HEADER}: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def known_sender(self, n: int) -> bytes:
        return self._request(f"447911{n:06d}", f"Bench Sender {n}")

    def _mixed(self) -> tuple[bytes, bool]:
        if self.random.random() < self.new_share:
            self.new_senders += 1
            wa_id, name = f"447912{self.new_senders:06d}", f"New Sender {self.new_senders}"
            return self._request(wa_id, name), True
        return self.known_sender(self.random.randrange(self.known)), False

    def mixed(self) -> bytes:
        """The next webhook: a known sender mostly, a new one with probability new_share."""
        request, new = self._mixed()
        self.sent_new += new
        return request

    def prepared(self, count: int) -> Callable[[], bytes]:
        """`mixed()`, with `count` requests built ahead (so building them is not load-generator
        CPU inside the measured window); built on the fly once they run out."""
        ready = iter([self._mixed() for _ in range(count)])

        def next_request() -> bytes:
            request, new = next(ready, (b"", False))
            if not request:
                return self.mixed()
            self.sent_new += new
            return request

        return next_request


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    client_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + (
            self.transport_errors
        )

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _connection(
    port: int,
    next_request: Callable[[], bytes | None],
    result: LoadResult,
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            request = next_request()
            if request is None:
                return
            started = time.perf_counter()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                result.transport_errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            result.latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            result.statuses[status] += 1
            if status == 200:
                match = re.search(rb'"status":"(\w+)"', body)
                result.answers[match.group(1).decode() if match else "?"] += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _drive(
    port: int, connections: int, seconds: float, next_request: Callable[[], bytes | None]
) -> LoadResult:
    result = LoadResult(seconds=seconds)
    cpu_before = self_cpu()
    started = time.perf_counter()
    deadline = started + seconds
    tasks = [
        asyncio.create_task(_connection(port, next_request, result, deadline))
        for _ in range(connections)
    ]
    done, pending = await asyncio.wait(tasks, timeout=seconds + 60)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            result.transport_errors += 1
    result.seconds = time.perf_counter() - started
    result.client_cpu = self_cpu() - cpu_before
    return result


def drive(
    port: int, connections: int, seconds: float, next_request: Callable[[], bytes | None]
) -> LoadResult:
    """Keep `connections` keep-alive connections busy for `seconds` (or until requests end)."""
    try:  # uvicorn[standard] brings uvloop: a cheaper client leaves more CPU to the server
        import uvloop
    except ImportError:
        return asyncio.run(_drive(port, connections, seconds, next_request))
    return uvloop.run(_drive(port, connections, seconds, next_request))


@contextmanager
def serving(
    database_url: str,
    workdir: Path,
    args: argparse.Namespace,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, int]]:
    """`kobliat serve` as its own process (relay off unless `extra_env` turns it on);
    yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "KOBLIAT_DATABASE_URL": database_url,
        "KOBLIAT_WHATSAPP_APP_SECRET": SECRET,
        "KOBLIAT_RELAY_ENABLED": "false",
        "KOBLIAT_API_KEYS": "bench-not-used",
        "KOBLIAT_LOG_LEVEL": args.log_level,
    }
    if args.pool_size:
        env["KOBLIAT_DB_POOL_SIZE"] = str(args.pool_size)
    env.update(extra_env or {})
    log = workdir / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "kobliat"), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kobliat serve exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("kobliat serve did not come up within 60 s")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
