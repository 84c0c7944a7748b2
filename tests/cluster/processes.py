"""Real `kobliat serve` and `kobliat relay` processes for the scale-out tests, each logging to
a file, always stopped (the fixture's `stop_all`)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.cluster.load import WHATSAPP_SECRET
from tests.support.postgres import free_port
from tests.support.serve import KOBLIAT, clean_environment, stop_process, wait_until_healthy


def environment(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a kobliat process: this test's database, a WhatsApp secret, quick
    relay polls, an API key; `settings` are more KOBLIAT_ values (lower-case names)."""
    env = clean_environment()
    env.update(
        KOBLIAT_DATABASE_URL=database_url,
        KOBLIAT_WHATSAPP_APP_SECRET=WHATSAPP_SECRET,
        KOBLIAT_API_KEYS="test-key",
        KOBLIAT_SUBSCRIPTIONS_ALLOW_PRIVATE="true",  # the test's subscriber is on loopback
        KOBLIAT_RELAY_POLL_SECONDS="0.05",
        KOBLIAT_WEBHOOK_RETRY_BASE_SECONDS="0.05",
        KOBLIAT_WEBHOOK_RETRY_MAX_SECONDS="0.5",
        KOBLIAT_NATS_RETRY_MAX_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update({f"KOBLIAT_{name.upper()}": value for name, value in settings.items()})
    return env


class Kobliat:
    """One kobliat process (`serve` or `relay`)."""

    def __init__(
        self, command: list[str], env: dict[str, str], log: Path, *, health_port: bool = False
    ) -> None:
        """`health_port`: give a relay a port for its health endpoints (serve always has one)."""
        self.command, self.env, self.log = command, env, log
        self.port = free_port() if command[0] == "serve" or health_port else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """Base URL of a serve process (or of a relay's health endpoints)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Kobliat:
        """Start it; one with a port is waited for until /healthz answers."""
        args = [str(KOBLIAT), *self.command]
        if self.port is not None:
            args += ["--port", str(self.port)]
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                args, cwd=self.log.parent, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        if self.port is not None:
            wait_until_healthy(self.base, self.process, log=self.log)
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        """Process ids of its direct children (uvicorn's workers)."""
        found: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def kill(self) -> None:
        """SIGKILL: no clean-up, no lease released (a crashed host)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL when it does not end in time."""
        if self.process is not None:
            stop_process(self.process, timeout=30)
