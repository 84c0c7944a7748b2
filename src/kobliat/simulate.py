"""`kobliat simulate`: realistic signed webhooks of every channel and type, sent to a server.

Secrets come from the same KOBLIAT_ settings the server reads, so a shared `.env` (or
environment) is all both need. Channels without a secret here are skipped, and said so.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kobliat.channels.registry import CHANNELS
from kobliat.settings import Settings
from kobliat.simulate_payloads import Ids, Sender, build, samples

_MAX_IN_FLIGHT = 64


@dataclass
class Report:
    """What was sent, per channel and sample, and how the server answered."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, code)
    skipped: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Requests answered with something other than 2xx, or not answered at all."""
        return sum(n for (_, code), n in self.answers.items() if not code.startswith("2"))


@dataclass(frozen=True, slots=True)
class Request:
    """One signed webhook request, ready to send."""

    channel: str
    sample: str
    path: str
    body: bytes
    headers: dict[str, str]


class Signer:
    """Signs sample bodies for each channel with the configured secrets."""

    def __init__(self, settings: Settings, url: str):
        self._settings = settings
        self._base = (settings.public_url or url).rstrip("/")

    def secret(self, channel: str) -> str | None:
        """The channel's secret, or None when it is not configured."""
        value = getattr(self._settings, CHANNELS[channel].secret_setting)
        return (value.get_secret_value() or None) if value is not None else None

    def request(self, channel: str, sample: str, body: bytes) -> Request:
        """The request that delivers `body` on `channel`, signed as the provider would."""
        secret = self.secret(channel)
        assert secret is not None
        path = f"/webhooks/{channel}"
        headers = CHANNELS[channel].sign(body, self._base + path, secret)
        return Request(channel, sample, path, body, headers)


def run(
    *,
    url: str,
    rate: float,
    duration: float,
    senders: int,
    settings: Settings,
    console: Console | None = None,
) -> Report:
    """Send `rate` webhooks a second for `duration` seconds; show progress and a summary."""
    signer = Signer(settings, url)
    report = Report(skipped=[c for c in CHANNELS if signer.secret(c) is None])
    kinds = [(c, s) for c, s in samples() if c not in report.skipped]
    if kinds:
        plan = _Plan(url, rate, max(1, round(rate * duration)), senders, kinds)
        asyncio.run(_send_all(plan, signer, report, console or Console()))
    return report


@dataclass(frozen=True, slots=True)
class _Plan:
    url: str
    rate: float
    total: int
    senders: int
    kinds: list[tuple[str, str]]  # (channel, sample), sent round-robin


async def _send_all(plan: _Plan, signer: Signer, report: Report, out: Console) -> None:
    ids = Ids()
    gate = asyncio.Semaphore(_MAX_IN_FLIGHT)
    columns = (
        TextColumn("[bold]sending webhooks"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=plan.url, timeout=30) as client:
        with Progress(*columns, console=out) as progress:
            task = progress.add_task("send", total=plan.total)

            async def send(request: Request) -> None:
                async with gate:
                    code = await _post(client, request)
                report.sent[(request.channel, request.sample)] += 1
                report.answers[(request.channel, code)] += 1
                progress.advance(task)

            in_flight = []
            for n in range(plan.total):
                # Pace to the rate: request n leaves n/rate seconds after the start.
                delay = started + n / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                channel, sample = plan.kinds[n % len(plan.kinds)]
                body = build(channel, sample, Sender(random.randrange(plan.senders)), ids)
                request = signer.request(channel, sample, body)
                in_flight.append(asyncio.create_task(send(request)))
            await asyncio.gather(*in_flight)


async def _post(client: httpx.AsyncClient, request: Request) -> str:
    try:
        response = await client.post(request.path, content=request.body, headers=request.headers)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return str(response.status_code)


_HINTS = {
    "503": (
        "the server has no {channel} secret. `kobliat serve` reads .env only when it starts: "
        "restart it from the directory holding .env (or set {setting} for it)."
    ),
    "401": (
        "the server refused the {channel} signature: it runs with another {setting} than this "
        "command. Run both from the same directory (one .env) or give both the same value."
    ),
}


def hints(report: Report) -> list[str]:
    """What to do about the answers that say the server and this command disagree on secrets."""
    found = []
    for (channel, code), _ in sorted(report.answers.items()):
        if code in _HINTS:
            setting = CHANNELS[channel].secret_env
            found.append(f"{channel}: " + _HINTS[code].format(channel=channel, setting=setting))
    return found


def summary(report: Report) -> Table:
    """Per channel: how many requests of which sample types, and the answers."""
    table = Table(title="kobliat simulate")
    table.add_column("channel")
    table.add_column("requests", justify="right")
    table.add_column("sample types sent")
    table.add_column("answers")
    for channel in CHANNELS:
        if channel in report.skipped:
            table.add_row(channel, "0", "[yellow]skipped: no secret configured[/yellow]", "")
            continue
        sent = {s: n for (c, s), n in sorted(report.sent.items()) if c == channel}
        answers = {code: n for (c, code), n in sorted(report.answers.items()) if c == channel}
        table.add_row(
            channel,
            str(sum(sent.values())),
            ", ".join(f"{name}: {n}" for name, n in sent.items()),
            ", ".join(f"{code}: {n}" for code, n in answers.items()),
        )
    return table
