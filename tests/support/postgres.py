"""A throwaway PostgreSQL 15 cluster for the test session.

initdb refuses to run as root, so when we are root the cluster is created and run as the
`postgres` OS user, in a temp directory that user owns and that also holds its socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """The machine cannot run a throwaway cluster (no binaries, no postgres user)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> Path:
    configured = os.environ.get("KOBLIAT_PG_BINDIR")
    if configured:
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise PostgresUnavailable("pg_config not found")
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@dataclass
class PostgresCluster:
    """A running cluster; `url(dbname)` gives a SQLAlchemy URL."""

    root: Path
    port: int
    bindir: Path
    as_postgres: list[str]
    options: str = ""

    def url(self, dbname: str = "postgres") -> str:
        """URL of a database in this cluster (trust auth on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def pause(self, *, immediate: bool = False) -> None:
        """Shut the server down (fast: sessions are told and closed; immediate: as a crash,
        no checkpoint), keeping its files."""
        self._pg_ctl("-m", "immediate" if immediate else "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server again on the same port after `pause`."""
        self._pg_ctl("-o", self.options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")
        _wait_ready(self)

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data")]
        subprocess.run([*command, *args], capture_output=True, check=True)

    def stop(self) -> None:
        """Stop the server and delete its files."""
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(*, durable: bool = False) -> PostgresCluster:
    """initdb + start on a free loopback port; raises PostgresUnavailable when impossible.
    `durable`: synchronous_commit=on, so acknowledged commits survive an immediate stop (with
    it off, the test default, a crash loses the last commits)."""
    bindir = _bindir()
    if not (bindir / "initdb").exists():
        raise PostgresUnavailable(f"no initdb in {bindir}")
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="kobliat-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable("running as root without runuser")
        as_postgres = [runuser, "-u", "postgres", "--"]
        shutil.chown(root, user="postgres", group=None)
    os.chmod(root, 0o700)
    port = free_port()
    data = root / "data"
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        check=True,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        f"-c synchronous_commit={'on' if durable else 'off'} -c full_page_writes=off "
        "-c max_connections=300 "
        "-c shared_buffers=128MB"
    )
    started = subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"postgres did not start: {started.stderr}\n{log}")
    cluster = PostgresCluster(
        root=root, port=port, bindir=bindir, as_postgres=as_postgres, options=options
    )
    _wait_ready(cluster)
    return cluster


def _wait_ready(cluster: PostgresCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", cluster.port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("postgres did not accept connections")
