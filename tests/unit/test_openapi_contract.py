"""The OpenAPI document is one a client generator can use: stable, readable operation ids."""

from __future__ import annotations

import re

from kobliat.api import create_app


def _operations() -> dict[str, tuple[str, str]]:
    schema = create_app().openapi()
    found: dict[str, tuple[str, str]] = {}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert operation["operationId"] not in found, operation["operationId"]
            found[operation["operationId"]] = (method.upper(), path)
    return found


def test_operation_ids_are_unique_camel_case_names() -> None:
    operations = _operations()
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", name) for name in operations)
    assert operations["listConversations"] == ("GET", "/conversations")
    assert operations["createCustomer"] == ("POST", "/customers")
    assert operations["addParticipant"] == ("POST", "/conversations/{conversation_id}/participants")
    assert operations["getReadiness"] == ("GET", "/readyz")
