"""`kobliat serve` and `kobliat relay` as real OS processes that a test can start, kill -9 and
start again (same port, same database), with every channel secret configured."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.webhooks import (
    API_KEY,
    GENERIC_SECRET,
    TELEGRAM_BOT_ID,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
)
from tests.support.postgres import free_port
from tests.support.serve import (
    KOBLIAT,
    START_TIMEOUT,
    clean_environment,
    stop_process,
    wait_until_healthy,
)


def kobliat_env(db_url: str, *, nats_url: str | None = None, **settings: Any) -> dict[str, str]:
    """The environment of a kobliat process: this database (and NATS), every channel secret,
    the test API key, quick relay polls and retries; `settings` are more KOBLIAT_ values."""
    env = clean_environment()
    values: dict[str, Any] = {
        "database_url": db_url,
        "api_keys": API_KEY,
        "whatsapp_app_secret": WHATSAPP_SECRET,
        "whatsapp_verify_token": WHATSAPP_VERIFY_TOKEN,
        "telegram_secret_token": TELEGRAM_SECRET,
        "telegram_bot_id": TELEGRAM_BOT_ID,
        "twilio_auth_token": TWILIO_TOKEN,
        "generic_webhook_secret": GENERIC_SECRET,
        "relay_poll_seconds": 0.05,
        "nats_retry_max_seconds": 0.5,
        "nats_publish_timeout_seconds": 2.0,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.5,
        "webhook_timeout_seconds": 2.0,
        "log_level": "WARNING",
        "workers": 1,  # one serve process: its pid is the server
        "subscriptions_allow_private": "true",  # the test subscriber listens on 127.0.0.1
        **({"nats_url": nats_url} if nats_url else {}),
        **settings,
    }
    env.update({f"KOBLIAT_{k.upper()}": str(v) for k, v in values.items()})
    return env


class KobliatProcess:
    """One `kobliat` command as a child process; its output (over restarts) goes to `log`."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.args = args
        self.env = env
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.name = name
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        """Base URL of a serving process."""
        assert self.port is not None, f"{self.name} does not serve HTTP"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return None if self._process is None else self._process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start the process (a server: wait until /healthz answers 200)."""
        assert not self.alive(), f"{self.name} is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            self._process = subprocess.Popen(
                [str(KOBLIAT), *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes every child
            )
        self.starts += 1
        if self.port is not None:
            wait_until_healthy(self.base_url, self._process, log=self.log, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (`kill -9`) to the process and its children: no shutdown code runs."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL when it has not exited within 20 s."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        stop_process(process, timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a child left behind

    def log_text(self) -> str:
        """Everything the process printed so far (all its runs)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def serve_process(env: dict[str, str], workdir: Path, name: str = "serve") -> KobliatProcess:
    """`kobliat serve` on a free port (not started)."""
    port = free_port()
    process = KobliatProcess(["serve", "--port", str(port)], env, workdir, name)
    process.port = port
    return process


def relay_process(env: dict[str, str], workdir: Path, name: str = "relay") -> KobliatProcess:
    """`kobliat relay` (not started)."""
    return KobliatProcess(["relay"], env, workdir, name)


@contextmanager
def running(*processes: KobliatProcess) -> Iterator[tuple[KobliatProcess, ...]]:
    """Start the processes in order; stop every one of them on the way out, even on failure."""
    with ExitStack() as stack:
        for process in processes:
            stack.callback(process.stop)
            process.start()
        yield processes
