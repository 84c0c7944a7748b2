"""What JetStream's duplicate window costs in server memory: publishes N messages with distinct
`Nats-Msg-Id`s into a stream with a 24 h window and into one with a 1 s window (each on its own
fresh `nats-server -js`), and prints the servers' resident memory after each.

    uv run python bench/nats_window.py --messages 100000

Everything on 127.0.0.1; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.nats import NatsServer


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fill(url: str, *, window: float, messages: int) -> float:
    """Create the stream and publish `messages` events of ~600 bytes; returns seconds taken."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=10)
        await js.add_stream(name="KOBLIAT", subjects=["kobliat.>"], duplicate_window=window)
        body = b"x" * 600
        started = time.perf_counter()
        for start in range(0, messages, 500):
            acks = [
                js.publish("kobliat.bench", body, headers={"Nats-Msg-Id": str(uuid4())})
                for _ in range(min(500, messages - start))
            ]
            await asyncio.gather(*acks)
        return time.perf_counter() - started
    finally:
        await nc.close()


def main() -> None:
    """Run both windows and print the difference per message id."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    results = {}
    for window in (86400.0, 1.0):
        server = NatsServer(Path(tempfile.mkdtemp(prefix="kobliat-nats-")))
        server.start()
        try:
            assert server._process is not None
            pid = server._process.pid
            before = rss_mib(pid)
            took = asyncio.run(fill(server.url, window=window, messages=args.messages))
            time.sleep(3)  # the 1 s window's ids expire and are swept
            results[window] = rss_mib(pid)
            print(
                f"window {window:>7.0f} s: {args.messages} messages in {took:.1f} s; "
                f"RSS {before:.0f} MiB → {results[window]:.0f} MiB"
            )
        finally:
            server.stop()
    per_id = (results[86400.0] - results[1.0]) * 1024 * 1024 / args.messages
    print(f"≈ {per_id:.0f} bytes of server memory per event id held in the window")


if __name__ == "__main__":
    main()
