"""The events' contract: committed schema files match the code, and the server publishes them."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from kobliat.api import create_app
from kobliat.events import contract

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_committed_schema_files_are_the_ones_the_code_generates(tmp_path: Path) -> None:
    written = contract.write(tmp_path)
    for path in written:
        committed = DOCS / path.name
        assert committed.exists(), f"run: python -m kobliat.events.contract docs/events ({path})"
        assert json.loads(committed.read_text()) == json.loads(path.read_text()), path.name


def test_every_schema_is_valid_draft_2020_12() -> None:
    for event_type in contract.EVENT_DATA:
        Draft202012Validator.check_schema(contract.data_schema(event_type))
    Draft202012Validator.check_schema(contract.envelope_schema())


def test_schemas_and_asyncapi_are_served_without_a_key() -> None:
    http = TestClient(create_app())  # no lifespan: these routes need no database
    listed = http.get("/schemas/events").json()
    assert {item["type"] for item in listed["data"]} == set(contract.EVENT_DATA)
    one = http.get("/schemas/events/conversation.opened")
    assert one.status_code == 200
    assert one.headers["content-type"].startswith("application/schema+json")
    assert "participants" in one.json()["required"]
    missing = http.get("/schemas/events/conversation.exploded")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    document = http.get("/asyncapi.json").json()
    assert document["asyncapi"].startswith("3.")
    assert document["channels"]["nats_message_inbound_created"]["address"] == (
        "kobliat.message.inbound.created"
    )
