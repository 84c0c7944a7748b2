"""The NATS sink's settings: a list of servers, credentials that never reach a log line, and
stream settings JetStream refuses said plainly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from kobliat import metrics
from kobliat.db.engine import Database
from kobliat.events.nats_sink import NatsSink, redact_urls, server_list
from tests.builders import a_customer
from tests.support.events import a_container, stream_count
from tests.support.nats import NatsServer
from tests.support.postgres import free_port
from tests.support.relay import running_relay, wait_for

pytestmark = pytest.mark.nats
KOBLIAT = Path(sys.executable).parent / "kobliat"
PASSWORD = "n4ts-pa55word-never-logged"


def test_credentials_in_urls_are_redacted() -> None:
    text = "nats://kobliat:secret@10.0.0.1:4222, tls://token123@nats-2:4222 nats://n3:4222"
    assert redact_urls(text) == "nats://***@10.0.0.1:4222, tls://***@nats-2:4222 nats://n3:4222"
    assert server_list(" nats://a:4222, ,nats://b:4222 ") == ["nats://a:4222", "nats://b:4222"]


def _sink(relay_transports: dict[str, object]) -> NatsSink:
    sink = relay_transports["nats"]
    assert isinstance(sink, NatsSink)
    return sink


@pytest.mark.timeout(180)
def test_nats_credentials_never_logged_through_outage_and_failover(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "nats", credentials=("kobliat", PASSWORD))
    dead = f"nats://kobliat:{PASSWORD}@127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "KOBLIAT_DATABASE_URL": sqlite_url,
        "KOBLIAT_NATS_URL": f"{dead},{server.url_with(PASSWORD)}",
        "KOBLIAT_LOG_LEVEL": "DEBUG",
        "KOBLIAT_RELAY_POLL_SECONDS": "0.05",
    }
    log = tmp_path / "relay.log"
    with log.open("w") as out:
        relay = subprocess.Popen(
            [str(KOBLIAT), "relay"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: "nats error" in log.read_text(), what="a connection attempt")
        server.start()  # the second server of the list comes up
        wait_for(lambda: "nats connected" in log.read_text(), what="connected")
        a_customer(Database(sqlite_url))
        wait_for(lambda: stream_count(server.url_with(PASSWORD)) >= 1, what="an event")
        server.stop()
        wait_for(lambda: "nats disconnected" in log.read_text(), what="disconnected")
        server.start()
        wait_for(lambda: "nats reconnected" in log.read_text(), what="reconnected")
    finally:
        relay.terminate()
        relay.wait(timeout=30)
        server.stop()
    logged = log.read_text()
    assert f"server=127.0.0.1:{server.port}" in logged
    assert PASSWORD not in logged


def _old_stream(url: str) -> None:
    async def create() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_stream(name="KOBLIAT", subjects=["kobliat.>"])
        finally:
            await nc.close()

    asyncio.run(create())


@pytest.mark.timeout(120)
def test_window_updated_and_replicas_refused_on_a_single_server_are_reported(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    _old_stream(nats_server.url)  # JetStream's defaults: one replica, a 2-minute window
    container = a_container(
        sqlite_url,
        nats_url=nats_server.url,
        nats_replicas=3,
        nats_duplicate_window_seconds=3600,
    )
    try:
        with running_relay(container) as relay:
            sink = _sink(relay.transports)  # type: ignore[arg-type]
            wait_for(lambda: sink.report()["problem"] is not None, what="the refusal")
            report = sink.report()
            assert report["duplicate_window_seconds"] == 3600
            assert report["replicas"] == 1 and report["replicas_wanted"] == 3
            assert "num_replicas" in str(report["problem"]) or "replica" in str(report["problem"])
            assert metrics.NATS_STREAM_SETTINGS_APPLIED._value.get() == 0
            a_customer(container.db)  # events still flow into the stream it has
            wait_for(lambda: stream_count(nats_server.url) >= 1, what="an event")
    finally:
        container.close()
