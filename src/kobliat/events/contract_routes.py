"""The events' contract over HTTP: JSON Schemas per event type and the AsyncAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kobliat.events import contract
from kobliat.problems import Problem, documented

router = APIRouter(tags=["events"])


class SchemaResponse(JSONResponse):
    """A JSON Schema document."""

    media_type = "application/schema+json"


_LIST_EXAMPLE = {
    "data": [{"type": "conversation.opened", "schema": "/schemas/events/conversation.opened"}],
    "envelope": {"type": "object", "required": ["specversion", "id", "type", "data"]},
}


@router.get(
    "/schemas/events",
    responses={200: {"content": {"application/json": {"example": _LIST_EXAMPLE}}}},
)
def list_event_schemas() -> dict[str, Any]:
    """Every event type, with where its `data` schema is and the envelope's schema."""
    return {
        "data": [{"type": t, "schema": f"/schemas/events/{t}"} for t in contract.EVENT_DATA],
        "envelope": contract.envelope_schema(),
    }


@router.get(
    "/schemas/events/{event_type}",
    response_class=SchemaResponse,
    responses={
        200: {
            "content": {
                "application/schema+json": {
                    "example": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "title": "conversation.closed",
                        "type": "object",
                        "required": ["event_id", "timestamp", "conversation_id"],
                    }
                }
            }
        },
        **documented(404),
    },
)
def get_event_schema(event_type: str) -> SchemaResponse:
    """The JSON Schema of one event type's `data` (e.g. `conversation.opened`)."""
    if event_type not in contract.EVENT_DATA:
        known = ", ".join(contract.EVENT_DATA)
        raise Problem(404, "unknown-event-type", f"no event type {event_type!r}; known: {known}")
    return SchemaResponse(contract.data_schema(event_type))


@router.get(
    "/asyncapi.json",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"asyncapi": "3.0.0", "info": {"title": "kobliat events"}}
                }
            }
        }
    },
)
def get_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the NATS subjects and HTTP subscription deliveries."""
    return contract.asyncapi()
