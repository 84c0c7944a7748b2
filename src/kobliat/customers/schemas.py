"""HTTP shapes of the customer context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from kobliat.customers.model import Customer
from kobliat.http import ReadableJson, Strict


class CustomerOut(BaseModel):
    """A customer as the API shows it (the seed's column names)."""

    id: UUID
    external_id: str
    external_type: str
    name: str | None
    metadata: ReadableJson
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        """From the domain object."""
        return cls.model_validate(customer, from_attributes=True)


class CustomerCreate(Strict):
    """Create-or-get by identity."""

    external_type: str = Field(default="whatsapp", min_length=1, max_length=64)
    external_id: str = Field(min_length=1, max_length=512)
    name: str | None = Field(default=None, max_length=512)
    metadata: dict[str, Any] | None = None


class CustomerPatch(Strict):
    """Name and/or metadata (merged, RFC 7396: null removes a key)."""

    name: str | None = Field(default=None, max_length=512)
    metadata: dict[str, Any] | None = None
