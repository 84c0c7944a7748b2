"""Who burns the cores: process CPU from /proc, other processes' share, a quiet-machine wait."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from pathlib import Path

from tests.support.postgres import PostgresCluster

# --------------------------------------------------------------------------------------------
# Process CPU accounting (Linux /proc): who burns the two cores.
# --------------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds used by a process (and its reaped children)."""
    try:
        fields = _stat(pid)
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def process_tree(pid: int) -> list[int]:
    """A process and every live descendant (parent first), found through /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo.extend(sorted(children.get(current, [])))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children and every live descendant (a server that
    runs worker processes does its work in them)."""
    return sum(proc_cpu(current, children=True) for current in process_tree(pid))


def serve_roles(root: int) -> dict[int, str]:
    """The processes of a `kobliat serve` tree and what each is: the serve process itself, the
    resource tracker of uvicorn's worker processes, or a worker."""
    roles = {}
    for pid in process_tree(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if pid == root:
            roles[pid] = "kobliat serve"
        else:
            roles[pid] = "resource tracker" if "resource_tracker" in command else "worker"
    return roles


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (VmRSS of /proc/<pid>/status); 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def _postmaster(cluster: PostgresCluster) -> int:
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


def wait_backends_gone(cluster: PostgresCluster, dbname: str, timeout: float = 5.0) -> None:
    """Wait until no backend of `dbname` is left, so the postmaster has reaped them and their
    CPU is in its cutime (else it would be missing from one window and land in the next)."""
    postmaster = _postmaster(cluster)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if int(_stat(int(entry.name))[1]) != postmaster:
                    continue
                if f" {dbname} ".encode() in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                    left += 1
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
        if left == 0:
            return
        time.sleep(0.1)


def postgres_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of the postmaster, its live backends and every backend that has exited."""
    postmaster = _postmaster(cluster)
    total = proc_cpu(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) == postmaster:
                total += proc_cpu(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def self_cpu() -> float:
    """CPU seconds of this (load generator) process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


class Others:
    """How busy the machine was with processes that are not this bench's (shared machines)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.busy = machine_busy()

    def cores(self, ours: float) -> float:
        """Cores used by other processes since construction, given our own CPU seconds."""
        elapsed = time.perf_counter() - self.started
        return max(0.0, (machine_busy() - self.busy - ours) / elapsed)


def wait_quiet(patience: float, *, threshold: float = 0.25, sample: float = 3.0) -> str:
    """Wait (up to `patience` s) until other processes use < `threshold` cores; say how busy."""
    deadline = time.monotonic() + patience
    while True:
        others = Others()
        mine = self_cpu()
        time.sleep(sample)
        busy = others.cores(self_cpu() - mine)
        if busy < threshold or time.monotonic() >= deadline:
            break
    load = os.getloadavg()
    return (
        f"machine before start: other processes busy {busy:.2f} cores,"
        f" load average {load[0]:.1f}/{load[1]:.1f} (figures below are per phase)"
    )


def describe() -> str:
    """The machine the figures come from: CPU model, cores, Python, load average."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"machine: {model}, {os.cpu_count()} cores, Python {sys.version.split()[0]},"
        f" load average {load} (1/5/15 min)"
    )
