"""Odd input to the REST API: answered with a 4xx problem, never a 500."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.auth import KeyChecker
from kobliat.bootstrap import Container
from kobliat.customers.identity import normalise
from kobliat.db.engine import Database
from kobliat.errors import InvalidInput
from kobliat.settings import Settings

API_KEY = "test-key-0123456789"


def api(db: Database, db_url: str, **settings: Any) -> TestClient:
    """An authenticated client on an app with these settings."""
    config = Settings(
        database_url=db_url, api_keys=API_KEY, relay_enabled=False, _env_file=None, **settings
    )  # type: ignore[call-arg]
    app = create_app(container=Container(settings=config, db=db, keys=KeyChecker(db, [API_KEY])))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {API_KEY}"
    return client


@pytest.mark.parametrize("path", ["/customers", "/conversations", "/events"])
def test_cursor_of_deeply_nested_brackets_is_a_400(client: TestClient, path: str) -> None:
    cursor = base64.urlsafe_b64encode(b"[" * 20_000 + b"]" * 20_000).decode().rstrip("=")

    response = client.get(path, params={"cursor" if path != "/events" else "after": cursor})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_national_phone_number_without_a_region_is_refused(client: TestClient) -> None:
    for external_type in ("phone", "whatsapp", "sms"):
        response = client.post(
            "/customers", json={"external_type": external_type, "external_id": "0612345678"}
        )

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "phone-number-without-country-code"
        assert "KOBLIAT_DEFAULT_PHONE_REGION" in response.json()["detail"]
    assert client.get("/customers").json()["data"] == []


def test_national_phone_number_takes_the_configured_region(db: Database, db_url: str) -> None:
    client = api(db, db_url, default_phone_region="nl")

    created = client.post(
        "/customers", json={"external_type": "phone", "external_id": "06 12345678"}
    )
    again = client.post(
        "/customers", json={"external_type": "phone", "external_id": "+31612345678"}
    )
    found = client.get("/customers", params={"external_type": "phone", "external_id": "0612345678"})

    assert created.status_code == 201 and created.json()["external_id"] == "+31612345678"
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert [c["id"] for c in found.json()["data"]] == [created.json()["id"]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("447911123456", "+447911123456"),  # a WhatsApp wa_id: country code, no +
        ("+447911123456", "+447911123456"),  # Twilio's E.164
        ("whatsapp:+447911123456", "+447911123456"),
        ("00447911123456", "+447911123456"),  # the international prefix
        ("5511987654321", "+5511987654321"),
    ],
)
@pytest.mark.parametrize("region", [None, "NL"])
def test_numbers_with_their_country_code_never_take_the_region(
    raw: str, expected: str, region: str | None
) -> None:
    assert normalise("whatsapp", raw, default_region=region) == ("whatsapp", expected)


def test_national_form_is_refused_for_every_phone_type_without_a_region() -> None:
    for external_type in ("phone", "whatsapp", "sms"):
        with pytest.raises(InvalidInput) as refused:
            normalise(external_type, "0612345678")
        assert refused.value.code == "phone-number-without-country-code"


def test_an_unknown_default_region_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="region code"):
        Settings(default_phone_region="XX", _env_file=None)  # type: ignore[call-arg]


def test_lone_surrogate_in_a_request_body_is_a_422_problem(client: TestClient) -> None:
    body = (
        '{"external_type": "email", "external_id": "a@example.com", "metadata": {"k": "x\\ud800"}}'
    )

    response = client.post("/customers", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert "surrogate" in response.text
    assert client.get("/customers").json()["data"] == []


def test_lone_surrogate_in_a_metadata_key_is_named_in_a_readable_answer(
    client: TestClient,
) -> None:
    body = '{"external_id": "a@example.com", "external_type": "email", "metadata": {"k\\udfff": 1}}'

    response = client.post("/customers", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert "metadata.k\\\\udfff" in response.text
