"""`kobliat` as a real process: the one place that starts `kobliat serve` and waits until it
answers, for tests that need the real server (uvicorn, its limits, its logs, several workers).
`tests.support.processes` (restartable processes) and `tests.cluster.processes` wait with it."""

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
# A bound, not a speed target: on PostgreSQL serve migrates, then starts several workers.
START_TIMEOUT = 120.0


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


def clean_environment() -> dict[str, str]:
    """This process's environment without any KOBLIAT_ setting (a developer's .env or shell
    never leaks into a test's server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}


@contextmanager
def serving(workdir: Path, env: dict[str, str], *, workers: int | None = 1) -> Iterator[Served]:
    """Start `kobliat serve` in `workdir` with `env` added to a clean environment, no relay and
    `workers` processes (None: serve's own default); wait until it answers; stop it after.
    Its output goes to `serve-<port>.log` in `workdir`."""
    port = free_port()
    settings = {"KOBLIAT_RELAY_ENABLED": "false"}
    if workers is not None:  # one process: `pid` is then the serving process
        settings["KOBLIAT_WORKERS"] = str(workers)
    log = workdir / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(KOBLIAT), "serve", "--port", str(port)],
            cwd=workdir,
            env={**clean_environment(), **settings, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log=log)
        yield Served(base=base, port=port, pid=proc.pid, log=log)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 60.0) -> None:
    """SIGTERM, then SIGKILL when the process has not ended within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def wait_until_healthy(
    base: str, proc: subprocess.Popen[bytes], *, log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Wait until `{base}/healthz` answers 200; fail with the end of the log when the process
    exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{proc.args} did not answer within {timeout:g} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""
