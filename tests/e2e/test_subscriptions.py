"""HTTP subscriptions end to end: the API, retries, dead letters, replay, isolation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.bootstrap import Container
from kobliat.events import subscriptions
from tests.builders import a_conversation
from tests.support.events import a_container, assert_in_aggregate_order, expected_events
from tests.support.nats import NatsServer
from tests.support.receiver import running_receiver
from tests.support.relay import running_relay, wait_for

AUTH = {"authorization": "Bearer test-key"}


def _client(container: Container) -> TestClient:
    return TestClient(create_app(container=container), headers=AUTH)


def _subscribe(client: TestClient, url: str, **extra: Any) -> dict[str, Any]:
    answer = client.post("/subscriptions", json={"url": url, **extra})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_secret_is_shown_once_and_subscriptions_can_be_listed_and_deleted(db_url: str) -> None:
    container = a_container(db_url)
    client = _client(container)
    made = _subscribe(client, "https://example.test/hook", event_types=["message.*"])
    assert made["secret"].startswith("whsec_")
    given = _subscribe(
        client, "https://example.test/other", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    assert given["secret"] == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    listed = client.get("/subscriptions", params={"limit": 1}).json()
    assert [s["id"] for s in listed["data"]] == [made["id"]]
    rest = client.get("/subscriptions", params={"cursor": listed["next_cursor"]}).json()
    assert [s["id"] for s in rest["data"]] == [given["id"]]
    one = client.get(f"/subscriptions/{made['id']}")
    assert one.json()["event_types"] == ["message.*"]
    for text in (client.get("/subscriptions").text, one.text):
        assert "whsec_" not in text and "secret" not in text

    assert client.delete(f"/subscriptions/{made['id']}").status_code == 204
    assert client.delete(f"/subscriptions/{made['id']}").status_code == 404
    assert client.post(f"/subscriptions/{made['id']}/replay").status_code == 404
    container.close()


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.test/x"},
        {"url": "https://example.test/x", "secret": "not-a-secret"},
        {"url": "https://example.test/x", "event_types": ["Conversation Opened"]},
        {"url": "https://example.test/x", "unknown": 1},
    ],
)
def test_bad_subscription_requests_are_422_problems(db_url: str, body: dict[str, Any]) -> None:
    container = a_container(db_url)
    answer = _client(container).post("/subscriptions", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    container.close()


def test_failing_subscriber_is_retried_then_dead_lettered_then_replayed_in_order(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    container = a_container(db_url, webhook_max_attempts=3)
    client = _client(container)
    with running_receiver() as receiver:
        receiver.answer = lambda _d: 500
        made = _subscribe(client, receiver.url)
        with running_relay(container):
            chat = a_conversation(container.db, channel="api")
            expected = expected_events(container.db)
            aggregates = {e["subject"] for e in expected.values()}
            wait_for(
                lambda: (
                    client.get(f"/subscriptions/{made['id']}").json()["dead_letters"]
                    == len(aggregates)
                ),
                timeout=60,
                what="dead letters",
            )
            # Each aggregate's first event was tried max_attempts times; later ones waited.
            assert receiver.attempts == 3 * len(aggregates)
            assert receiver.accepted() == []
            metrics = client.get("/metrics").text
            assert (
                f'kobliat_sink_dead_letters{{sink="{made["id"]}"}} {len(aggregates)}.0' in metrics
            )
            assert "kobliat_relay_lag_seconds" in metrics
            ready = client.get("/readyz").json()["relay"]
            assert ready["lag_seconds"] > 0

            receiver.answer = lambda _d: 204
            replayed = client.post(f"/subscriptions/{made['id']}/replay")
            assert replayed.status_code == 202
            assert replayed.json() == {"aggregates": len(aggregates)}
            wait_for(
                lambda: receiver.accepted_ids() == set(expected), timeout=60, what="replayed events"
            )
    assert_in_aggregate_order(d.event for d in receiver.accepted())
    assert str(chat.id) in {d.event["subject"] for d in receiver.accepted()}
    assert made["secret"] not in capsys.readouterr().out
    container.close()


def test_failing_aggregate_holds_back_only_its_own_later_events(db_url: str) -> None:
    container = a_container(db_url, webhook_max_attempts=1000)
    with running_receiver() as receiver:
        stuck = a_conversation(container.db, channel="api")
        fine = a_conversation(container.db, channel="api")
        receiver.answer = lambda d: 503 if d.event["subject"] == str(stuck.id) else 204
        container.db.run(
            lambda uow: subscriptions.create(
                uow,
                url=receiver.url,
                event_types=["conversation.*", "message.*"],
                secret=None,
                allow_private=True,
            )
        )
        with running_relay(container):
            for n in range(5):
                _message(container, stuck.id, n)
                _message(container, fine.id, n)
            fine_ids = _ids_of(container, fine.id)
            wait_for(lambda: receiver.accepted_ids() >= fine_ids, timeout=60, what="fine")
            assert receiver.attempts > len(fine_ids), "the stuck aggregate was being retried"
            assert not any(d.event["subject"] == str(stuck.id) for d in receiver.accepted())

            receiver.answer = lambda _d: 204
            stuck_ids = _ids_of(container, stuck.id)
            wait_for(lambda: receiver.accepted_ids() >= stuck_ids, timeout=60, what="stuck")
    assert_in_aggregate_order(d.event for d in receiver.accepted())
    container.close()


@pytest.mark.nats
def test_slow_subscriber_delays_neither_another_subscriber_nor_nats(
    db_url: str, nats_server: NatsServer
) -> None:
    container = a_container(db_url, nats_url=nats_server.url, webhook_timeout_seconds=5)
    with running_receiver() as slow, running_receiver() as fast:
        slow.delay = 1.0
        for receiver in (slow, fast):
            container.db.run(
                lambda uow, url=receiver.url: subscriptions.create(
                    uow, url=url, event_types=None, secret=None, allow_private=True
                )
            )
        with running_relay(container) as relay:
            chats = [a_conversation(container.db, channel="api") for _ in range(3)]
            for n in range(10):
                for chat in chats:
                    _message(container, chat.id, n)
            expected = set(expected_events(container.db))
            wait_for(lambda: fast.accepted_ids() == expected, timeout=60, what="fast")
            wait_for(
                lambda: relay.counts.get("nats", {}).get("delivered", 0) >= len(expected),
                timeout=60,
                what="NATS",
            )
            # The slow one needs at least 10 s per conversation (10 events, 1 s each, in order).
            assert len(slow.accepted_ids()) < len(expected)
    container.close()


def _message(container: Container, chat_id: UUID, n: int) -> None:
    from kobliat.messages import service as messages

    container.db.run(
        lambda uow: messages.send_outbound(uow, chat_id, content_type="text", body=f"m{n}")
    )


def _ids_of(container: Container, aggregate_id: UUID) -> set[str]:
    return {
        i for i, e in expected_events(container.db).items() if e["subject"] == str(aggregate_id)
    }


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://0x7f000001/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://017700000001/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://100.64.0.1/hook", "reserved"),
    ],
)
def test_subscriptions_to_internal_addresses_are_refused(db_url: str, url: str, rule: str) -> None:
    container = a_container(db_url, subscriptions_allow_private=False)
    answer = _client(container).post("/subscriptions", json={"url": url})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "subscription-destination-not-allowed"
    assert rule in problem["detail"]
    assert _client(container).get("/subscriptions").json()["data"] == []
    container.close()


def test_internal_addresses_can_be_allowed_for_development(db_url: str) -> None:
    container = a_container(db_url, subscriptions_allow_private=True)
    assert _subscribe(_client(container), "http://127.0.0.1:8080/hook")["id"]
    container.close()
