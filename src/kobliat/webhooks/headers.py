"""Credentials and delivery ids come in headers, and each must come exactly once.

With a header sent twice, one reader could check the signature against one copy while another
keys the delivery on the other (a captured request replayed with a fresh `webhook-id` would be
stored again). No provider repeats these headers, so a repeat is refused before anything else.
"""

from __future__ import annotations

from fastapi import Request

from kobliat import metrics
from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.problems import Problem

SINGLE_HEADERS = tuple(
    name.lower()
    for name in (
        whatsapp.SIGNATURE_HEADER,
        telegram.SECRET_HEADER,
        twilio.SIGNATURE_HEADER,
        *generic.SIGNED_HEADERS,
    )
)


async def refuse_repeated_headers(request: Request) -> None:
    """A 400 problem when a signature or delivery-id header is sent more than once (async:
    a sync dependency would cost every webhook a trip through the thread pool)."""
    for name in SINGLE_HEADERS:
        if len(request.headers.getlist(name)) > 1:
            channel = request.url.path.rstrip("/").rpartition("/")[2]
            metrics.WEBHOOKS.labels(channel, "repeated-header").inc()
            raise Problem(
                400, "repeated-header", f"the {name} header must be sent once, not repeated"
            )
