"""First contact: the relay delivers committed events to an HTTP subscriber and to NATS."""

from __future__ import annotations

import pytest

from kobliat.events import subscriptions
from tests.builders import a_conversation
from tests.support.events import a_container, expected_events, read_stream
from tests.support.nats import NatsServer
from tests.support.receiver import running_receiver
from tests.support.relay import running_relay, wait_for

pytestmark = pytest.mark.nats


def test_relay_delivers_to_http_subscriber_and_nats(db_url: str, nats_server: NatsServer) -> None:
    container = a_container(db_url, nats_url=nats_server.url)
    with running_receiver() as receiver:
        container.db.run(
            lambda uow: subscriptions.create(
                uow, url=receiver.url, event_types=None, secret=None, allow_private=True
            )
        )
        with running_relay(container):
            a_conversation(container.db)
            expected = set(expected_events(container.db))
            wait_for(lambda: receiver.accepted_ids() >= expected, timeout=30, what="webhooks")
            wait_for(
                lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= expected,
                timeout=30,
                what="NATS",
            )
    container.close()
