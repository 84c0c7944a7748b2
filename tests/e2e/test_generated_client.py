"""A typed Python client generated from kobliat's OpenAPI by openapi-python-client drives the API.

What a team integrating kobliat does first: generate a client, then create a customer, open a
conversation and list conversations with it, over real HTTP (both backends).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from kobliat.api import create_app
from kobliat.db.engine import Database
from tests.e2e.test_simulate import server_url  # noqa: F401  (fixture)
from tests.e2e.webhooks import API_KEY

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


def _generate(tmp_path: Path) -> Any:
    """Generate the client package from the served schema; import it."""
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(create_app().openapi()))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"post_hooks": [], "package_name_override": "kobliat_client"}))
    result = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(schema), "--config", str(config)),
            *("--meta", "none", "--output-path", str(tmp_path / "kobliat_client")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unable to parse" not in result.stdout + result.stderr, result.stdout
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    return importlib.import_module("kobliat_client")


def test_a_generated_client_creates_a_customer_opens_a_conversation_and_lists_it(
    db: Database,
    server_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    client_package = _generate(tmp_path)
    try:
        from kobliat_client import AuthenticatedClient  # type: ignore[import-not-found]
        from kobliat_client.api.conversations import (  # type: ignore[import-not-found]
            create_conversation,
            list_conversations,
        )
        from kobliat_client.api.customers import create_customer  # type: ignore[import-not-found]
        from kobliat_client.models import (  # type: ignore[import-not-found]
            ConversationCreate,
            ConversationCreateType,
            CustomerCreate,
            CustomerOut,
            ParticipantIn,
            ProblemDetails,
        )

        client = AuthenticatedClient(base_url=server_url, token=API_KEY)
        with client:
            priya = create_customer.sync(
                client=client,
                body=CustomerCreate(external_type="whatsapp", external_id="+44 7700 900123"),
            )
            business = create_customer.sync(
                client=client, body=CustomerCreate(external_type="whatsapp", external_id="12")
            )
            assert isinstance(priya, CustomerOut), priya
            assert priya.external_id == "+447700900123"
            assert isinstance(business, ProblemDetails)  # too short to be a phone number
            assert business.code == "invalid-phone-number"
            business = create_customer.sync(
                client=client,
                body=CustomerCreate(external_type="whatsapp", external_id="+1 415 555 0100"),
            )
            opened = create_conversation.sync(
                client=client,
                body=ConversationCreate(
                    type_=ConversationCreateType.DIRECT,
                    channel="whatsapp",
                    participants=[
                        ParticipantIn(customer_id=priya.id),
                        ParticipantIn(customer_id=business.id),
                    ],
                ),
            )
            page = list_conversations.sync(client=client, customer_id=priya.id, limit=10)
        assert [c.id for c in page.data] == [opened.id]
        assert page.data[0].status.value == "open" and page.next_cursor is None
        assert {p.customer_id for p in page.data[0].participants} == {priya.id, business.id}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith(client_package.__name__)]:
            del sys.modules[name]
