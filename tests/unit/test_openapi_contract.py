"""The OpenAPI document is one a client generator can use: stable, readable operation ids."""

from __future__ import annotations

import re
from typing import Any

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


def _schema() -> dict[str, Any]:
    return create_app().openapi()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    found: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def _has_example(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    """A media type or schema carries an example, directly or through its `$ref`/page items."""
    if "example" in node or "examples" in node:
        return True
    target = _resolve(schema, node.get("schema", node))
    if "examples" in target or "example" in target:
        return True
    choices = [c for c in target.get("anyOf", []) if c.get("type") != "null"]
    if choices:
        return all(_has_example(schema, choice) for choice in choices)
    items = target.get("properties", {}).get("data", {}).get("items")  # a Page of something
    return items is not None and _has_example(schema, items)


def test_every_operation_has_a_summary_and_description() -> None:
    for path, methods in _schema()["paths"].items():
        for method, operation in methods.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)


def test_every_parameter_and_schema_field_is_described() -> None:
    schema = _schema()
    missing = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                if not parameter.get("description"):
                    missing.append(f"{method} {path} ?{parameter['name']}")
    for name, component in schema["components"]["schemas"].items():
        for field, spec in component.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{field}")
    assert missing == []


def test_every_json_request_body_and_response_has_an_example() -> None:
    schema = _schema()
    missing = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {})
            for media, spec in body.items():
                if "json" in media and not _has_example(schema, spec):
                    missing.append(f"{method} {path} request {media}")
            for status, response in operation["responses"].items():
                for media, spec in response.get("content", {}).items():
                    if "json" in media and not _has_example(schema, spec):
                        missing.append(f"{method} {path} {status} {media}")
    assert missing == []


def test_output_fields_with_a_fixed_set_of_values_are_enums() -> None:
    components = _schema()["components"]["schemas"]
    for name, field in [
        ("ConversationListItem", "type"),
        ("ConversationListItem", "status"),
        ("NamedParticipant", "role"),
        ("LastMessagePreview", "direction"),
        ("LastMessagePreview", "content_type"),
        ("MessageOut", "direction"),
        ("MessageOut", "content_type"),
    ]:
        assert "enum" in components[name]["properties"][field], (name, field)


def test_operations_document_the_problems_the_edge_answers() -> None:
    """Every operation behind the API key lists 503 (the database it reads may be unavailable)
    with its Retry-After header; every one that takes a body lists 408 and 413 (the body
    limits); each of them as a problem+json with an example of its own code."""
    schema = _schema()
    missing = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            wanted = []
            if operation.get("security"):
                wanted += ["401", "503"]
            if "requestBody" in operation:
                wanted += ["400", "408", "413"]
            responses = operation["responses"]
            missing += [f"{method} {path} {s}" for s in wanted if s not in responses]
            for status in ("408", "413", "503"):
                if status not in responses:
                    continue
                example = responses[status]["content"]["application/problem+json"]["example"]
                if example["status"] != int(status) or example["code"] == "internal-error":
                    missing.append(f"{method} {path} {status} example")
                if status == "503" and "Retry-After" not in responses[status].get("headers", {}):
                    missing.append(f"{method} {path} 503 Retry-After")
    assert missing == []
    customers = schema["paths"]["/customers"]
    assert {"408", "413", "503"} <= customers["post"]["responses"].keys()
    assert "503" in customers["get"]["responses"] and "413" not in customers["get"]["responses"]
