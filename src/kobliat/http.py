"""Pieces every router shares: the list envelope and request-scoped access to the container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from kobliat.bootstrap import Container

T = TypeVar("T")

# PostgreSQL text and jsonb cannot hold U+0000, SQLite can: kobliat refuses it in every input so
# both backends answer the same (a 422, not a 500 on one of them).
NO_NUL = r"^[^\x00]*$"
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(description="opaque cursor from the previous page")]


class Page(BaseModel, Generic[T]):
    """Every list answers `{"data": [...], "next_cursor": str | null}`."""

    data: list[T]
    next_cursor: str | None


class Strict(BaseModel):
    """Request bodies refuse fields they do not know (a typo is an error, not a no-op), and
    text holding NUL anywhere, metadata included (see NO_NUL)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        where = _nul_at(data)
        if where is not None:
            place = ".".join(where).replace("\x00", "\\u0000") or "the top level"
            raise ValueError(f"text must not contain NUL (U+0000); found at {place}")
        return data


def _nul_at(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where the first string (value or key) holding U+0000 is, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        here = (*path, str(key))
        if "\x00" in here[-1]:
            return here
        if (found := _nul_at(item, here)) is not None:
            return found
    return None


def container(request: Request) -> Container:
    """The application's container (built at start-up by `bootstrap`)."""
    found: Container = request.app.state.kobliat
    return found
