"""What every part of the ingest bench shares: where the tools are, the secret, the target."""

from __future__ import annotations

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
