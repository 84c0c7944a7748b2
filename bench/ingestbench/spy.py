"""Phase 3a: py-spy samples of the serving process, summarised by library and function."""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from ingestbench.common import (
    BIN,
    SPY_RATE,
)
from ingestbench.load import Traffic, drive


def py_spy(pid: int, port: int, traffic: Traffic, args: argparse.Namespace, out: Path) -> int:
    """Sample the serving process under the same load; returns the 200s sent meanwhile."""
    exe = BIN / "py-spy"
    if not exe.exists():
        print("  (py-spy not installed: no server-side samples)")
        return 0
    seconds = max(3, round(args.profile_seconds))
    spy = subprocess.Popen(
        [
            str(exe),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(SPY_RATE),
            "--subprocesses",  # the serve workers
            "--gil",  # only the thread holding the GIL: Python's CPU, not threads waiting
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    load = drive(port, max(args.connection_levels), seconds, traffic.mixed)
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if spy.returncode != 0 or not out.exists():
        print(f"  (py-spy failed: {err.strip()[-500:]})")
    return load.ok


_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _kobliat_module(path: str) -> str | None:
    """`kobliat.x.y` for a frame in kobliat's package (py-spy shortens paths), else None."""
    if path.startswith("kobliat/"):
        return path.removesuffix(".py").replace("/", ".")
    if "/kobliat/" in path:
        return "kobliat." + path.split("/kobliat/", 1)[1].removesuffix(".py").replace("/", ".")
    return None


def _category(path: str, func: str) -> str:
    module = _kobliat_module(path)
    if module is not None:
        return module
    rules = (
        ("sqlalchemy", "sqlalchemy"),
        ("psycopg", "psycopg"),
        ("phonenumbers", "phonenumbers"),
        ("structlog", "logging"),
        ("logging", "logging"),
        ("uvicorn", "uvicorn/httptools"),
        ("h11", "uvicorn/httptools"),
        ("httptools", "uvicorn/httptools"),
        ("starlette", "starlette/fastapi"),
        ("fastapi", "starlette/fastapi"),
        ("pydantic", "pydantic"),
        ("anyio", "threads (anyio)"),
        ("threading", "threads (anyio)"),
        ("concurrent", "threads (anyio)"),
        ("asyncio", "asyncio"),
        ("json", "json"),
        ("prometheus", "prometheus"),
        ("uuid", "uuid"),
    )
    for needle, name in rules:
        if needle in path:
            return name
    return f"other ({Path(path).name})"


def summarise_py_spy(raw: Path, top: int, seconds: float) -> None:
    """Self time by library and inclusive time of kobliat's own functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        parsed = [_FRAME.match(f) for f in frames]
        leaf = parsed[-1] if parsed else None
        own[_category(leaf["file"], leaf["func"]) if leaf else "?"] += count
        seen = set()
        for match in parsed:
            module = None if match is None else _kobliat_module(match["file"])
            if match is None or module is None:
                continue
            name = f"{module}.{match['func']}"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if total == 0:
        print("  (no samples)")
        return
    print(
        f"  {total} samples of the GIL-holding thread in {seconds:.0f} s at {SPY_RATE}/s: the GIL"
        f" was held {total / (SPY_RATE * seconds):.0%} of the time"
    )
    print("  self time by library (where the Python CPU is spent):")
    for name, count in own.most_common(top):
        print(f"    {count / total:6.1%}  {name}")
    print("  inclusive time of kobliat functions:")
    for name, count in inclusive.most_common(top):
        print(f"    {count / total:6.1%}  {name}")


def _short(path: str) -> str:
    for marker in ("/kobliat/", "site-packages/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
