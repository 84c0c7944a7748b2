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
    """A running cluster; `url(dbname)` gives a SQLAlchemy URL. `stop(keep_files=True)` then
    `start()` restarts it on the same port and data (a database outage)."""

    root: Path
    port: int
    bindir: Path
    as_postgres: list[str]
    durable: bool = False  # commits survive a crash (immediate stop): synchronous_commit=on

    def url(self, dbname: str = "postgres") -> str:
        """URL of a database in this cluster (trust auth on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop the server at once (as a crash would) and delete its files unless kept."""
        subprocess.run(
            [*self._pg_ctl(), "-m", "immediate", "-w", "stop"], capture_output=True, check=False
        )
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        """Start the server on its data directory and port; wait until it accepts connections."""
        # fsync=off only risks data on an OS crash; synchronous_commit=off loses the last
        # commits on a server crash too, so a durable cluster keeps it on.
        commit = "on" if self.durable else "off"
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit={commit} -c full_page_writes=off -c max_connections=300 "
            "-c shared_buffers=128MB"
        )
        started = subprocess.run(
            [*self._pg_ctl(), "-o", options, "-l", str(self.root / "log"), "-w", "start"],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"postgres did not start: {started.stderr}\n{log}")
        _wait_ready(self)

    def _pg_ctl(self) -> list[str]:
        return [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data")]


def start_cluster(*, durable: bool = False) -> PostgresCluster:
    """initdb + start on a free loopback port; raises PostgresUnavailable when impossible.
    `durable`: acknowledged commits survive a crash of the server (slower)."""
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
    cluster = PostgresCluster(
        root=root, port=port, bindir=bindir, as_postgres=as_postgres, durable=durable
    )
    try:
        cluster.start()
    except RuntimeError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


def _wait_ready(cluster: PostgresCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", cluster.port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("postgres did not accept connections")
