"""The REST API over HTTP, as a user drives it (both backends)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kobliat.db.engine import Database
from kobliat.db.tables import conversation_participants, conversations
from tests.builders import count, events_of


def _customer(
    client: TestClient, external_id: str, external_type: str = "whatsapp", **extra: Any
) -> dict[str, Any]:
    r = client.post(
        "/customers", json={"external_type": external_type, "external_id": external_id, **extra}
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _is_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["code"] == code and body["detail"]


def test_requests_without_a_valid_key_get_401_problems(client: TestClient) -> None:
    _is_problem(client.get("/conversations", headers={"Authorization": ""}), 401, "missing-api-key")
    _is_problem(
        client.get("/conversations", headers={"Authorization": "Bearer nope"}),
        401,
        "invalid-api-key",
    )
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_customers_create_or_get_lookup_and_patch(client: TestClient, db: Database) -> None:
    r = client.post("/customers", json={"external_id": "447700900123", "name": "Priya"})
    assert r.status_code == 201
    created = r.json()
    assert created["external_type"] == "whatsapp" and created["external_id"] == "+447700900123"
    again = client.post("/customers", json={"external_id": "+44 7700 900123"})
    assert again.status_code == 200 and again.json()["id"] == created["id"]
    found = client.get(
        "/customers", params={"external_type": "whatsapp", "external_id": "447700900123"}
    ).json()
    assert [c["id"] for c in found["data"]] == [created["id"]] and found["next_cursor"] is None
    patched = client.patch(f"/customers/{created['id']}", json={"metadata": {"tier": "gold"}})
    assert patched.json()["metadata"] == {"tier": "gold"} and patched.json()["name"] == "Priya"
    assert client.get(f"/customers/{created['id']}").json()["metadata"] == {"tier": "gold"}
    assert [e["type"] for e in events_of(db)] == ["customer.created", "customer.updated"]


def test_bad_input_gets_clear_problems_and_stores_nothing(client: TestClient, db: Database) -> None:
    _is_problem(client.post("/customers", json={"external_id": "12"}), 422, "invalid-phone-number")
    _is_problem(
        client.post("/customers", json={"external_id": "x", "nmae": "typo"}),
        422,
        "validation-error",
    )
    _is_problem(client.get("/customers/not-a-uuid"), 422, "validation-error")
    _is_problem(
        client.get("/customers/7f1b7a1e-2c57-4d6b-9c39-0d7a7a6a0a01"), 404, "customer-not-found"
    )
    _is_problem(client.get("/conversations", params={"cursor": "garbage"}), 400, "invalid-cursor")
    _is_problem(
        client.post(
            "/conversations", json={"type": "group", "channel": "whatsapp", "participants": []}
        ),
        422,
        "group-name-required",
    )
    _is_problem(
        client.post(
            "/conversations",
            json={
                "type": "direct",
                "channel": "whatsapp",
                "participants": [
                    {"customer_id": "7f1b7a1e-2c57-4d6b-9c39-0d7a7a6a0a01"},
                    {"customer_id": "7f1b7a1e-2c57-4d6b-9c39-0d7a7a6a0a02"},
                ],
            },
        ),
        422,
        "unknown-customer",
    )
    assert count(db, conversations) == 0 and events_of(db) == []


def test_group_conversation_flow_as_the_readme_shows(client: TestClient, db: Database) -> None:
    owner, member, late = (
        _customer(client, n) for n in ("447700900001", "447700900002", "447700900003")
    )
    r = client.post(
        "/conversations",
        json={
            "type": "group",
            "channel": "whatsapp",
            "group_name": "Clinic B",
            "participants": [
                {"customer_id": owner["id"], "role": "owner"},
                {"customer_id": member["id"]},
            ],
        },
    )
    assert r.status_code == 201, r.text
    conv = r.json()
    assert {p["customer"]["external_id"]: p["role"] for p in conv["participants"]} == {
        "+447700900001": "owner",
        "+447700900002": "member",
    }
    added = client.post(
        f"/conversations/{conv['id']}/participants",
        json={"customer_id": late["id"], "role": "admin"},
    )
    assert added.status_code == 201 and added.json()["role"] == "admin"
    _is_problem(
        client.post(f"/conversations/{conv['id']}/participants", json={"customer_id": late["id"]}),
        409,
        "participant-exists",
    )
    _is_problem(
        client.post(
            f"/conversations/{conv['id']}/participants",
            json={"customer_id": late["id"], "role": "boss"},
        ),
        422,
        "validation-error",
    )
    renamed = client.patch(f"/conversations/{conv['id']}", json={"group_name": "Clinic C"})
    assert renamed.json()["group_name"] == "Clinic C"
    assert (
        client.delete(f"/conversations/{conv['id']}/participants/{member['id']}").status_code == 204
    )
    detail = client.get(f"/conversations/{conv['id']}").json()
    assert {p["customer_id"] for p in detail["participants"]} == {owner["id"], late["id"]}
    assert count(db, conversation_participants) == 2
    assert [e["type"] for e in events_of(db) if e["subject"] == conv["id"]] == [
        "conversation.opened",
        "conversation.participant.added",
        "conversation.updated",
        "conversation.participant.removed",
    ]


def test_direct_rules_are_409_problems(client: TestClient) -> None:
    a, b, c = (_customer(client, str(n), "telegram") for n in (1, 2, 3))
    r = client.post(
        "/conversations",
        json={
            "type": "direct",
            "channel": "telegram",
            "participants": [{"customer_id": a["id"]}, {"customer_id": b["id"]}],
        },
    )
    assert r.status_code == 201
    same = client.post(
        "/conversations",
        json={
            "type": "direct",
            "channel": "telegram",
            "participants": [{"customer_id": b["id"]}, {"customer_id": a["id"]}],
        },
    )
    assert same.status_code == 200 and same.json()["id"] == r.json()["id"]
    _is_problem(
        client.post(f"/conversations/{r.json()['id']}/participants", json={"customer_id": c["id"]}),
        409,
        "direct-needs-exactly-two-participants",
    )
    _is_problem(
        client.post(
            "/conversations",
            json={
                "type": "direct",
                "channel": "telegram",
                "participants": [
                    {"customer_id": a["id"], "role": "owner"},
                    {"customer_id": c["id"]},
                ],
            },
        ),
        422,
        "invalid-role",
    )


def test_conversations_list_page_by_page_with_filters(client: TestClient) -> None:
    people = [_customer(client, str(n), "telegram") for n in range(6)]
    for i in range(5):
        client.post(
            "/conversations",
            json={
                "type": "direct",
                "channel": "telegram",
                "participants": [
                    {"customer_id": people[0]["id"]},
                    {"customer_id": people[i + 1]["id"]},
                ],
            },
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/conversations", params=params).json()
        seen.extend(c["id"] for c in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    mine = client.get("/conversations", params={"customer_id": people[3]["id"]}).json()["data"]
    assert len(mine) == 1
    assert client.get("/conversations", params={"status": "closed"}).json()["data"] == []
    _is_problem(client.get("/conversations", params={"status": "gone"}), 422, "validation-error")


def test_outbound_messages_honour_idempotency_key(client: TestClient, db: Database) -> None:
    a, b = (_customer(client, str(n), "telegram") for n in (1, 2))
    conv = client.post(
        "/conversations",
        json={
            "type": "direct",
            "channel": "telegram",
            "participants": [{"customer_id": a["id"]}, {"customer_id": b["id"]}],
        },
    ).json()
    url = f"/conversations/{conv['id']}/messages"
    first = client.post(url, json={"body": "hello"}, headers={"Idempotency-Key": "k1"})
    again = client.post(url, json={"body": "hello"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["direction"] == "outbound" and first.json()["channel"] == "telegram"
    _is_problem(
        client.post(url, json={"body": "other"}, headers={"Idempotency-Key": "k1"}),
        409,
        "idempotency-key-reused",
    )
    listed = client.get(url).json()
    assert [m["id"] for m in listed["data"]] == [first.json()["id"]]
    assert client.get(f"/conversations/{conv['id']}").json()["messages"][0]["body"] == "hello"
    client.patch(f"/conversations/{conv['id']}", json={"status": "closed"})
    _is_problem(client.post(url, json={"body": "late"}), 409, "conversation-closed")
    assert len(events_of(db, "message.outbound.created")) == 1


def test_event_feed_over_http_returns_cloudevents_in_order(client: TestClient) -> None:
    _customer(client, "447700900001")
    _customer(client, "447700900002")
    page = client.get("/events", params={"limit": 1}).json()
    assert len(page["data"]) == 1
    event = page["data"][0]
    assert event["specversion"] == "1.0" and event["type"] == "customer.created"
    assert event["data"]["event_id"] == event["id"] and event["sequence"] == 1
    rest = client.get("/events", params={"after": page["next_cursor"]}).json()
    assert len(rest["data"]) == 1 and rest["data"][0]["id"] != event["id"]


def test_openapi_and_health_need_no_key(client: TestClient) -> None:
    client.headers.pop("Authorization")
    assert (
        "/conversations/{conversation_id}/participants"
        in client.get("/openapi.json").json()["paths"]
    )
    assert client.get("/readyz").json()["database"] == "ok"
    assert "kobliat_http_requests_total" in client.get("/metrics").text


def _requests_counted(client: TestClient, method: str, route: str, status: str) -> float:
    """kobliat_http_requests_total for these labels, as /metrics shows it (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "kobliat_http_requests_total" and sample.labels == {
                "method": method,
                "route": route,
                "status": status,
            }:
                return sample.value
    return 0.0


def test_requests_refused_for_their_key_are_counted_under_the_route_they_aimed_at(
    client: TestClient,
) -> None:
    client.headers.pop("Authorization")
    messages = "/conversations/{conversation_id}/messages"
    one = _requests_counted(client, "GET", messages, "401")
    other_method = _requests_counted(client, "PUT", messages, "401")
    unmatched = _requests_counted(client, "GET", "unmatched", "401")

    for _ in range(3):  # a new id each time: still one series
        assert client.get(f"/conversations/{uuid4()}/messages").status_code == 401
    assert client.put(f"/conversations/{uuid4()}/messages").status_code == 401
    assert client.get(f"/customers/{uuid4()}/no/such/route").status_code == 401

    assert _requests_counted(client, "GET", messages, "401") == one + 3
    assert _requests_counted(client, "PUT", messages, "401") == other_method + 1
    assert _requests_counted(client, "GET", "unmatched", "401") == unmatched + 1
    assert "/no/such/route" not in client.get("/metrics").text
