"""Throughput with 1, 2 and 3 `kobliat serve` worker processes on one PostgreSQL, and the CPU
each process spends per webhook, so a deployment can be sized by message rate.

    uv run python bench/scale.py                   # 1, 2, 3 workers, 15 s windows
    uv run python bench/scale.py --seconds 8 --workers 1 2

Runs on this machine over 127.0.0.1 only, in a throwaway PostgreSQL cluster it starts itself
(as the tests do). The load generator (asyncio, keep-alive, signed WhatsApp text webhooks,
distinct message ids, from a fixed set of senders made known during a warm-up) shares the
cores; its CPU is printed, and so are the load average and the cores other processes used.
Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import PostgresCluster, free_port, start_cluster

from kobliat.channels.samples import whatsapp_messages
from kobliat.channels.samples.signing import whatsapp_headers
from kobliat.db import migrate
from kobliat.db.engine import Database

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds a live process has used (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    """Direct children of a process (uvicorn's workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes (its children, without multiprocessing's resource tracker)."""
    found = []
    for child in children(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def postgres_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of the postmaster's live children (the backends serving this run)."""
    postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
    return sum(proc_cpu(pid) for pid in children(postmaster))


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


class Traffic:
    """Signed raw HTTP requests: text messages from `senders` senders, distinct ids."""

    def __init__(self, port: int, senders: int) -> None:
        self.port, self.senders, self.n = port, senders, 0

    def next(self) -> bytes:
        """The next request's bytes."""
        self.n += 1
        sender = self.n % self.senders
        body = whatsapp_messages.text(
            wa_id=f"4477008{sender:05d}",
            message_id=f"wamid.bench-{os.getpid()}-{self.n}",
            timestamp=1767261845 + self.n,
            body=f"bench {self.n}",
        )
        headers = whatsapp_headers(body, SECRET)
        head = (
            f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        return head.encode() + body


async def _connection(
    port: int, traffic: Traffic, deadline: float, stats: tuple[Counter[int], list[float]], per: int
) -> None:
    """Send on one keep-alive connection, reopening it every `per` requests: a connection
    belongs to the worker that accepted it, and providers do not keep theirs for ever."""
    statuses, latencies = stats
    while time.perf_counter() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(per):
                if time.perf_counter() >= deadline:
                    break
                started = time.perf_counter()
                writer.write(traffic.next())
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(_content_length(head))
                latencies.append(time.perf_counter() - started)
                statuses[int(head[9:12])] += 1
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def drive(
    port: int, traffic: Traffic, *, connections: int, seconds: float, per: int
) -> tuple[Counter[int], list[float]]:
    """Keep `connections` keep-alive connections busy for `seconds`."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                _connection(port, traffic, deadline, (statuses, latencies), per)
                for _ in range(connections)
            )
        )

    asyncio.run(run())
    return statuses, latencies


@contextmanager
def serve(url: str, workers: int, log: Path) -> Iterator[tuple[int, list[int]]]:
    """`kobliat serve --workers N` (no relay); yields its port and the pids doing the work."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    env.update(
        KOBLIAT_DATABASE_URL=url,
        KOBLIAT_WHATSAPP_APP_SECRET=SECRET,
        KOBLIAT_RELAY_ENABLED="false",
        KOBLIAT_API_KEYS="bench",
        KOBLIAT_LOG_LEVEL="WARNING",
    )
    command = [str(BIN / "kobliat"), "serve", "--port", str(port), "--workers", str(workers)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    pids = workers_of(proc.pid) if workers > 1 else [proc.pid]
                    if len(pids) >= workers:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"serve did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield port, pids
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def measure(cluster: PostgresCluster, url: str, workers: int, args: argparse.Namespace) -> str:
    """One row of the table: webhooks/s, latency, CPU per webhook of each party."""
    with serve(url, workers, Path(tempfile.gettempdir()) / f"scale-{workers}.log") as (port, pids):
        traffic = Traffic(port, args.senders)
        drive(port, traffic, connections=args.connections, seconds=args.warmup, per=args.per)
        load_before = os.getloadavg()[0]
        cpu = [proc_cpu(p) for p in pids]
        pg, busy, me = postgres_cpu(cluster), machine_busy(), time.process_time()
        started = time.perf_counter()
        statuses, latencies = drive(
            port, traffic, connections=args.connections, seconds=args.seconds, per=args.per
        )
        elapsed = time.perf_counter() - started
        used = [proc_cpu(p) - c for p, c in zip(pids, cpu, strict=True)]
        pg_used, me_used = postgres_cpu(cluster) - pg, time.process_time() - me
        others = max(0.0, (machine_busy() - busy - sum(used) - pg_used - me_used) / elapsed)
    ok = statuses.get(200, 0)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    per = 1000 / max(ok, 1)
    return (
        f"| {workers} | {ok / elapsed:7.0f} | {latencies[len(latencies) // 2] * 1000:5.1f} | "
        f"{p99:6.1f} | {sum(statuses.values()) - ok} | "
        f"{' + '.join(f'{u / elapsed:.2f}' for u in used)} | {sum(used) * per:.2f} | "
        f"{pg_used / elapsed:.2f} | {pg_used * per:.2f} | {me_used / elapsed:.2f} | "
        f"{others:.2f} | {load_before:.1f} |"
    )


def main() -> None:
    """Run each worker count in turn and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--senders", type=int, default=500)
    parser.add_argument("--per", type=int, default=50, help="requests per connection")
    args = parser.parse_args()
    cluster = start_cluster()
    try:
        url = cluster.url("postgres")
        db = Database(url)
        migrate.upgrade(db.engine)
        db.dispose()
        print(f"cores {os.cpu_count()}, {args.connections} connections, {args.seconds:.0f} s")
        print(
            "| workers | webhooks/s | p50 ms | p99 ms | errors | cores per worker | "
            "worker CPU ms/webhook | PostgreSQL cores | PostgreSQL ms/webhook | "
            "load generator cores | other processes' cores | load average |"
        )
        print("|" + "---|" * 12)
        for workers in args.workers:
            print(measure(cluster, url, workers, args), flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
