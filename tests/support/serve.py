"""`kobliat serve` as a real process for tests that need the real server (uvicorn, limits)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.postgres import free_port

KOBLIAT = Path(sys.executable).parent / "kobliat"


@dataclass(frozen=True)
class Served:
    """A running server: where it listens, its process id and its log file."""

    base: str
    port: int
    pid: int
    log: Path

    def peak_rss_kib(self) -> int:
        """The process's peak resident memory so far (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    """Start `kobliat serve` with `env` added to a clean KOBLIAT_ environment; stop it after."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(KOBLIAT), "serve", "--port", str(port)],
            cwd=tmp_path,
            # One process unless the test asks for more: `pid` is then the serving process.
            env={**clean, "KOBLIAT_RELAY_ENABLED": "false", "KOBLIAT_WORKERS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc, log)
        yield Served(base=base, port=port, pid=proc.pid, log=log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_until_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not come up")
