"""What every part of the ingest bench shares: where the tools are, the secret, the target."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"
CEILING_SENDERS = 10_000
TARGET = 0.40
SPY_RATE = 200
KEPT_HEADERS = {"content-type": "application/json"}


class Overtime(Exception):
    """The whole bench ran past --max-seconds."""


def begin(max_seconds: int, quiet_patience: float) -> None:
    """Every bench's opening: the machine line, the wait for a quiet machine (when asked for),
    then a watchdog that ends the bench after `max_seconds` (the wait not counted)."""
    from ingestbench.machine import describe, wait_quiet

    def overtime(*_: object) -> None:
        raise Overtime(f"bench ran past --max-seconds={max_seconds}")

    signal.signal(signal.SIGALRM, overtime)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr,unused-ignore]
    print(describe())
    print(wait_quiet(quiet_patience))
    signal.alarm(max_seconds)
