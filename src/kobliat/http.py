"""Pieces every router shares: the list envelope and request-scoped access to the container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from kobliat.jsonlimits import describe, readable, unstorable

if TYPE_CHECKING:
    from kobliat.bootstrap import Container

T = TypeVar("T")

# PostgreSQL text and jsonb cannot hold U+0000, SQLite can: kobliat refuses it in every input so
# both backends answer the same (a 422, not a 500 on one of them). Bodies: see `kobliat.jsonlimits`.
NO_NUL = r"^[^\x00]*$"
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(description="opaque cursor from the previous page")]


class Page(BaseModel, Generic[T]):
    """Every list answers `{"data": [...], "next_cursor": str | null}`."""

    data: list[T] = Field(description="the items of this page")
    next_cursor: str | None = Field(
        description="pass it as `cursor` (the feed: `after`) for the next page; null on the last"
    )


class Strict(BaseModel):
    """Request bodies refuse fields they do not know (a typo is an error, not a no-op), and
    values a backend could not store or give back (see `kobliat.jsonlimits`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable(cls, data: Any) -> Any:
        found = unstorable(data)
        if found is not None:
            raise ValueError(describe(found))
        return data


def _readable(value: Any, info: ValidationInfo) -> Any:
    row = info.data.get("id", info.data.get("customer_id")) if info.data else None
    shape = info.config.get("title") if info.config else None
    return readable(value, what=f"{shape} {row} {info.field_name}")


# A stored JSON object as answers give it back: one that breaks a limit becomes a marker.
ReadableJson = Annotated[dict[str, Any], AfterValidator(_readable)]


def container(request: Request) -> Container:
    """The application's container (built at start-up by `bootstrap`)."""
    found: Container = request.app.state.kobliat
    return found
