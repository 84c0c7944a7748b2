"""Pieces every router shares: the list envelope and request-scoped access to the container."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from kobliat.bootstrap import Container

T = TypeVar("T")

# PostgreSQL text and jsonb cannot hold U+0000, SQLite can: kobliat refuses it in every input so
# both backends answer the same (a 422, not a 500 on one of them). Bodies: see `_unstorable`.
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
    values a backend could not store or give back (see `_unstorable`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable(cls, data: Any) -> Any:
        found = _unstorable(data)
        if found is not None:
            reason, path = found
            place = ".".join(path).replace("\x00", "\\u0000") or "the top level"
            raise ValueError(f"{reason}; found at {place}")
        return data


MAX_DEPTH = 64


def _unstorable(value: Any, path: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]] | None:
    """Why and where a value (metadata included) cannot be kept, or None.

    NUL: PostgreSQL text and jsonb cannot hold it, SQLite can. NaN and Infinity: Python's JSON
    parser accepts them, PostgreSQL's jsonb does not, and answers could not carry them back.
    Depth: answers nest bodies a few levels deeper, and serialising stops at ~255 levels.
    """
    if len(path) > MAX_DEPTH:
        return f"JSON nested deeper than {MAX_DEPTH} levels", path
    if isinstance(value, str):
        return ("text must not contain NUL (U+0000)", path) if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (JSON has no NaN or Infinity)", path
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        here = (*path, str(key))
        if "\x00" in here[-1]:
            return "text must not contain NUL (U+0000)", here
        if (found := _unstorable(item, here)) is not None:
            return found
    return None


def container(request: Request) -> Container:
    """The application's container (built at start-up by `bootstrap`)."""
    found: Container = request.app.state.kobliat
    return found
