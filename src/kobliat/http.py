"""Pieces every router shares: the list envelope and request-scoped access to the container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from kobliat.bootstrap import Container

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(description="opaque cursor from the previous page")]


class Page(BaseModel, Generic[T]):
    """Every list answers `{"data": [...], "next_cursor": str | null}`."""

    data: list[T]
    next_cursor: str | None


class Strict(BaseModel):
    """Request bodies refuse fields they do not know (a typo is an error, not a no-op)."""

    model_config = ConfigDict(extra="forbid")


def container(request: Request) -> Container:
    """The application's container (built at start-up by `bootstrap`)."""
    found: Container = request.app.state.kobliat
    return found
