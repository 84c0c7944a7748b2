"""HTTP edge of the customer context."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from kobliat.bootstrap import Container
from kobliat.customers import service
from kobliat.customers.schemas import CustomerCreate, CustomerOut, CustomerPatch
from kobliat.errors import InvalidInput
from kobliat.http import NO_NUL, Cursor, Limit, Page, container
from kobliat.problems import documented

router = APIRouter(prefix="/customers", tags=["customers"])
App = Annotated[Container, Depends(container)]


@router.get("", response_model=Page[CustomerOut], responses=documented(400))
def list_customers(
    app: App,
    external_type: Annotated[str | None, Query(min_length=1, pattern=NO_NUL)] = None,
    external_id: Annotated[
        str | None,
        Query(
            min_length=1, pattern=NO_NUL, description="look up one identity (with external_type)"
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CustomerOut]:
    """List customers oldest first, or look one up by (external_type, external_id)."""
    with app.db.reading() as conn:
        if external_id is not None:
            if not external_type:
                raise InvalidInput("a lookup needs external_type as well as external_id")
            found = service.lookup(
                conn,
                external_type=external_type,
                external_id=external_id,
                default_region=app.settings.default_phone_region,
            )
            return Page(data=[CustomerOut.of(found)] if found else [], next_cursor=None)
        items, next_cursor = service.list_page(
            conn, cursor=cursor, limit=limit, external_type=external_type
        )
    return Page(data=[CustomerOut.of(c) for c in items], next_cursor=next_cursor)


@router.post(
    "",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": CustomerOut, "description": "the customer with this identity"}},
)
def create_customer(body: CustomerCreate, app: App, response: Response) -> CustomerOut:
    """Create a customer, or get the one with this identity (200)."""
    customer, created = app.db.run(
        lambda uow: service.find_or_create(
            uow,
            external_type=body.external_type,
            external_id=body.external_id,
            name=body.name,
            metadata=body.metadata,
            default_region=app.settings.default_phone_region,
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return CustomerOut.of(customer)


@router.get("/{customer_id}", response_model=CustomerOut, responses=documented(404))
def get_customer(customer_id: UUID, app: App) -> CustomerOut:
    """One customer."""
    with app.db.reading() as conn:
        return CustomerOut.of(service.get(conn, customer_id))


@router.patch("/{customer_id}", response_model=CustomerOut, responses=documented(404))
def patch_customer(customer_id: UUID, body: CustomerPatch, app: App) -> CustomerOut:
    """Change the name and/or merge metadata (`customer.updated` when something changed)."""
    customer = app.db.run(
        lambda uow: service.update_profile(uow, customer_id, name=body.name, metadata=body.metadata)
    )
    return CustomerOut.of(customer)
