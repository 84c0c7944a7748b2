"""Inbox use cases: accept a verified delivery (durable before the 2xx) and retry failed ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

import structlog

from kobliat import ingest
from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import ParsedWebhook, PayloadError
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.inbox import store
from kobliat.inbox.model import (
    MAX_ATTEMPTS,
    RETENTION,
    STATUS_SWEEP_WINDOW,
    Delivery,
    next_attempt_at,
)
from kobliat.messages import service as messages
from kobliat.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    """How a delivery was taken in: processed now, seen before, or stored for the worker."""

    status: Literal["processed", "duplicate", "queued"]
    delivery_key: str
    outcome: ingest.Outcome | None = None


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"form body is not UTF-8: {exc}") from exc
    return parse_qsl(text, keep_blank_values=True)


def parse(delivery: Delivery, settings: Settings) -> ParsedWebhook:
    """The records a delivery carries; PayloadError when it is malformed."""
    match delivery.channel:
        case "whatsapp":
            return whatsapp.parse(delivery.body)
        case "telegram":
            return telegram.parse(
                delivery.body, bot_id=settings.telegram_bot_id, received_at=delivery.received_at
            )
        case "twilio":
            return twilio.parse(form_pairs(delivery.body), received_at=delivery.received_at)
        case "generic":
            return generic.parse(delivery.body, delivery_id=delivery.headers["webhook-id"])
    raise ValueError(f"no parser for channel {delivery.channel!r}")


def accept(db: Database, delivery: Delivery, settings: Settings) -> Receipt:
    """Parse a verified delivery, then store and process it in one transaction.

    Raises PayloadError (nothing stored) when it is malformed. When processing fails, the
    delivery is stored unprocessed in a second transaction for the worker, so the provider
    can still be answered 2xx; only when even that fails does the error propagate.
    """
    parsed = parse(delivery, settings)
    key = parsed.delivery_key

    def store_and_process(uow: UnitOfWork) -> ingest.Outcome | None:
        now = utcnow()
        stored = store.insert(
            uow.connection, delivery, delivery_key=key, processed_at=now, next_attempt_at=now
        )
        return None if stored is None else ingest.process(uow, parsed)

    try:
        outcome = db.run(store_and_process)
    except Exception as exc:
        log.exception(
            "webhook processing failed; queued for retry",
            channel=delivery.channel,
            delivery_key=key,
        )
        error = describe(exc)
        db.run(lambda uow: _store_failed(uow, delivery, key, error))
        return Receipt("queued", key)
    if outcome is None:
        return Receipt("duplicate", key)
    return Receipt("processed", key, outcome)


def _store_failed(uow: UnitOfWork, delivery: Delivery, key: str, error: str) -> None:
    now = utcnow()
    store.insert(
        uow.connection,
        delivery,
        delivery_key=key,
        processed_at=None,
        next_attempt_at=next_attempt_at(1, now),
        error=error,
    )


def process_stored(db: Database, inbox_id: int, settings: Settings) -> bool:
    """Process one unprocessed delivery; False when it was done or is held by another worker."""

    def work(uow: UnitOfWork) -> bool:
        claimed = store.claim(uow.connection, inbox_id)
        if claimed is None:
            return False
        ingest.process(uow, parse(claimed.delivery, settings))
        store.mark_processed(uow.connection, inbox_id, now=utcnow())
        return True

    try:
        return db.run(work)
    except Exception as exc:
        log.exception("inbox delivery failed again", inbox_id=inbox_id)
        error = describe(exc)
        db.run(lambda uow: _record_failure(uow, inbox_id, error))
        return False


def _record_failure(uow: UnitOfWork, inbox_id: int, error: str) -> None:
    done = store.attempts(uow.connection, inbox_id)
    if done is None:
        return
    store.record_failure(
        uow.connection,
        inbox_id,
        error=error,
        attempts=done + 1,
        next_attempt_at=next_attempt_at(done + 1, utcnow()),
    )


def process_due(db: Database, settings: Settings, *, limit: int = 100) -> int:
    """Process the deliveries that are due (oldest first); returns how many succeeded."""
    with db.reading() as conn:
        ids = store.due(conn, now=utcnow(), max_attempts=MAX_ATTEMPTS, limit=limit)
    return sum(process_stored(db, inbox_id, settings) for inbox_id in ids)


def apply_overdue_statuses(db: Database, *, limit: int = 100) -> int:
    """Apply statuses kept while their message was committing (see messages.service)."""
    since = utcnow() - STATUS_SWEEP_WINDOW
    with db.reading() as conn:
        keys = messages.overdue_statuses(conn, since=since, limit=limit)
    if not keys:  # the usual case: no write transaction at all
        return 0
    return db.run(lambda uow: messages.apply_overdue_statuses(uow, keys))


def prune(db: Database) -> tuple[int, int]:
    """Forget processed deliveries and never-matched statuses past their retention."""
    before = utcnow() - RETENTION

    def work(uow: UnitOfWork) -> tuple[int, int]:
        deliveries = store.delete_processed_before(uow.connection, before)
        return deliveries, messages.forget_pending_statuses(uow, before=before)

    return db.run(work)


def describe(exc: BaseException) -> str:
    """An error as kept in `inbox.last_error` (bounded; payloads can be large)."""
    return f"{type(exc).__name__}: {exc}"[:2000]
