"""HTTP shapes of the customer context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kobliat.customers.model import Customer
from kobliat.http import ReadableJson, Strict

EXAMPLE: JsonDict = {
    "id": "0b6f3a52-7c1e-4d5a-9a51-2f0c8d1e9b42",
    "external_id": "+447700900123",
    "external_type": "whatsapp",
    "name": "Priya",
    "metadata": {"tier": "gold"},
    "created_at": "2026-01-31T10:15:00.123456Z",
    "updated_at": "2026-01-31T10:20:00.654321Z",
}


class CustomerOut(BaseModel):
    """A customer: one identity on one channel (phone numbers normalised to E.164)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: UUID = Field(description="the customer's id")
    external_id: str = Field(
        description="the identity on its channel, normalised: E.164 for phone numbers "
        "(`+447700900123`), the numeric id for Telegram, lower-case for e-mail"
    )
    external_type: str = Field(
        description="the identity's kind: `whatsapp`, `telegram`, `sms`, `phone`, `email`, ..."
    )
    name: str | None = Field(description="display name, when known")
    metadata: ReadableJson = Field(description="free-form attributes (PATCH merges them)")
    created_at: datetime = Field(description="when kobliat first stored the customer")
    updated_at: datetime = Field(description="when the name or metadata last changed")

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        """From the domain object."""
        return cls.model_validate(customer, from_attributes=True)


class CustomerCreate(Strict):
    """Create-or-get by identity: 201 with a new customer, 200 with the one that exists."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"external_type": "whatsapp", "external_id": "+44 7700 900123", "name": "Priya"}
            ]
        }
    )

    external_type: str = Field(
        default="whatsapp",
        min_length=1,
        max_length=64,
        description="the identity's kind (`whatsapp`, `telegram`, `sms`, `email`, ...)",
    )
    external_id: str = Field(
        min_length=1,
        max_length=512,
        description="the identity; phone numbers in any common format, with their country code",
    )
    name: str | None = Field(default=None, max_length=512, description="display name")
    metadata: dict[str, Any] | None = Field(default=None, description="free-form attributes")


class CustomerPatch(Strict):
    """Name and/or metadata (merged, RFC 7396: null removes a key)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Priya S.", "metadata": {"tier": None}}]}
    )

    name: str | None = Field(default=None, max_length=512, description="the new display name")
    metadata: dict[str, Any] | None = Field(
        default=None, description="a JSON merge patch for the metadata (`null` removes a key)"
    )
