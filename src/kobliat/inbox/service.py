"""Inbox use cases: accept a verified delivery (durable before the 2xx), retry failed ones,
give up on those that cannot succeed, and replay them for an operator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from kobliat import ingest
from kobliat.channels import registry
from kobliat.channels.records import ParsedWebhook, PayloadError
from kobliat.db import dialect
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.inbox import store
from kobliat.inbox.model import (
    MAX_ATTEMPTS,
    RETENTION,
    STATUS_SWEEP_WINDOW,
    Delivery,
    Entry,
    next_attempt_at,
)
from kobliat.messages import service as messages
from kobliat.settings import Settings

log = structlog.get_logger(__name__)
_ERROR_LENGTH = 2000  # inbox.last_error is bounded: payloads (and so errors) can be large


@dataclass(frozen=True, slots=True)
class Receipt:
    """How a delivery was taken in: processed now, seen before, stored for the worker, or
    stored as failed (a domain rule refused some of it; the rest is processed)."""

    status: Literal["processed", "duplicate", "queued", "failed"]
    delivery_key: str
    outcome: ingest.Outcome | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """What an operator's retry of one delivery key came to."""

    delivery_key: str
    result: Literal["processed", "failed", "pending", "processed already", "not found"]
    channel: str | None = None
    error: str | None = None


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept."""
    return registry.form_pairs(body)


def parse(delivery: Delivery, settings: Settings) -> ParsedWebhook:
    """The records a delivery carries; PayloadError when it is malformed."""
    channel = registry.get(delivery.channel)
    return channel.parse(delivery.body, delivery.headers, delivery.received_at, settings)


def accept(
    db: Database, delivery: Delivery, settings: Settings, *, parsed: ParsedWebhook | None = None
) -> Receipt:
    """Parse a verified delivery, then store and process it in one transaction.

    Raises PayloadError (nothing stored) when it is malformed. When processing fails, the
    delivery is still stored in a second transaction, so the provider can be answered 2xx:
    as failed when a domain rule refused it (after applying the items that are fine), or
    unprocessed for the worker otherwise. Only when even that fails does the error propagate.
    """
    if parsed is None:
        parsed = parse(delivery, settings)
    key = parsed.delivery_key
    webhook = parsed

    def store_and_process(uow: UnitOfWork) -> ingest.Outcome | None:
        now = utcnow()
        stored = store.insert(
            uow.connection, delivery, delivery_key=key, processed_at=now, next_attempt_at=now
        )
        return None if stored is None else ingest.process(uow, webhook)

    try:
        outcome = db.run(store_and_process)
    except Exception as exc:
        return _keep_failed(db, delivery, webhook, exc)
    if outcome is None:
        return Receipt("duplicate", key)
    return Receipt("processed", key, outcome)


def _keep_failed(
    db: Database, delivery: Delivery, parsed: ParsedWebhook, failure: BaseException
) -> Receipt:
    """Store a delivery whose processing failed: as failed (with the items that are fine
    applied) when trying again cannot help, else for the worker to retry. When the database
    itself is unavailable nothing can be stored: the error propagates (a 503, not queued)."""
    if dialect.is_unavailable(failure):
        raise failure
    if is_permanent(failure):
        try:
            return db.run(lambda uow: _store_settled(uow, delivery, parsed))
        except Exception as exc:  # the item-by-item pass failed otherwise: retry it later
            failure = exc
    key = parsed.delivery_key
    error = describe(failure)
    db.run(lambda uow: _store_failed(uow, delivery, key, error))
    # Logged once it is true: a delivery the database refused to store was not queued.
    log.error(
        "webhook processing failed; queued for retry",
        channel=delivery.channel,
        delivery_key=key,
        exc_info=failure,
    )
    return Receipt("queued", key)


def _store_settled(uow: UnitOfWork, delivery: Delivery, parsed: ParsedWebhook) -> Receipt:
    key = parsed.delivery_key
    inbox_id = store.insert(
        uow.connection, delivery, delivery_key=key, processed_at=None, next_attempt_at=utcnow()
    )
    if inbox_id is None:  # the provider's retry of it was stored meanwhile
        return Receipt("duplicate", key)
    outcome = _settle(uow, inbox_id, parsed, attempts=1)
    return Receipt("failed" if outcome.failures else "processed", key, outcome)


def _settle(
    uow: UnitOfWork,
    inbox_id: int,
    parsed: ParsedWebhook,
    *,
    attempts: int,
    refused: Callable[[BaseException], bool] | None = None,
) -> ingest.Outcome:
    """Apply the items that are not refused for good, one by one; mark the delivery failed with
    the refusals (or processed, when there were none after all)."""
    outcome = ingest.process(uow, parsed, isolate=True, refused=refused)
    if outcome.failures:
        error = "; ".join(outcome.failures)
        if attempts >= MAX_ATTEMPTS:
            error = f"gave up after {attempts} attempts: {error}"
        error = error[:_ERROR_LENGTH]
        log.warning("webhook delivery failed for good", inbox_id=inbox_id, error=error)
        store.mark_failed(uow.connection, inbox_id, now=utcnow(), attempts=attempts, error=error)
    else:
        store.mark_processed(uow.connection, inbox_id, now=utcnow(), attempts=attempts)
    return outcome


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
    """Process one pending delivery; False when it failed, was done, or is held elsewhere.

    A failure a retry cannot mend (a domain rule, a payload that no longer parses) marks it
    failed at once, after applying the items that are fine; any other failure backs off.
    """
    try:
        return db.run(lambda uow: _attempt(uow, inbox_id, settings, isolate=False))
    except Exception as exc:
        failure: BaseException = exc
    if is_permanent(failure):
        try:
            return db.run(lambda uow: _attempt(uow, inbox_id, settings, isolate=True))
        except Exception as exc:
            failure = exc
    log.error("inbox delivery failed again", inbox_id=inbox_id, exc_info=failure)
    error = describe(failure)
    db.run(lambda uow: _record_failure(uow, inbox_id, error))
    return False


def _attempt(uow: UnitOfWork, inbox_id: int, settings: Settings, *, isolate: bool) -> bool:
    claimed = store.claim(uow.connection, inbox_id)
    if claimed is None:
        return False
    attempts = claimed.attempts + 1
    try:
        parsed = parse(claimed.delivery, settings)
    except PayloadError as exc:
        # It parsed when it was accepted: the parser has changed since, and will not change back.
        error = describe(exc)
        log.warning("stored delivery no longer parses", inbox_id=inbox_id, error=error)
        store.mark_failed(uow.connection, inbox_id, now=utcnow(), attempts=attempts, error=error)
        return False
    if attempts >= MAX_ATTEMPTS:
        # The last try goes item by item, and only an outage fails every item: an item that
        # keeps failing for a reason nobody foresaw must not hold its neighbours back for good.
        refused = _is_not_outage
        isolate = True
    else:
        refused = None
    if isolate:
        outcome = _settle(uow, inbox_id, parsed, attempts=attempts, refused=refused)
        return not outcome.failures
    ingest.process(uow, parsed)
    store.mark_processed(uow.connection, inbox_id, now=utcnow(), attempts=attempts)
    return True


def _record_failure(uow: UnitOfWork, inbox_id: int, error: str) -> None:
    done = store.attempts(uow.connection, inbox_id)
    if done is None:
        return
    attempts, now = done + 1, utcnow()
    if attempts >= MAX_ATTEMPTS:
        error = f"gave up after {attempts} attempts: {error}"[:_ERROR_LENGTH]
        store.mark_failed(uow.connection, inbox_id, now=now, attempts=attempts, error=error)
        return
    store.record_failure(
        uow.connection,
        inbox_id,
        error=error,
        attempts=attempts,
        next_attempt_at=next_attempt_at(attempts, now),
    )


def process_due(db: Database, settings: Settings, *, limit: int = 100) -> int:
    """Process the deliveries that are due (oldest first); returns how many succeeded."""
    with db.reading() as conn:
        ids = store.due(conn, now=utcnow(), limit=limit)
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


def unprocessed(db: Database, state: Literal["pending", "failed"], *, limit: int) -> list[Entry]:
    """Deliveries that failed (latest first) or wait for an attempt (next first)."""
    with db.reading() as conn:
        return store.entries(conn, state, limit=limit)


def backlog(db: Database) -> dict[str, int]:
    """How many deliveries are pending and how many failed (for the metrics)."""
    with db.reading() as conn:
        return store.counts(conn)


def retry(
    db: Database, settings: Settings, *, keys: Sequence[str] = (), all_failed: bool = False
) -> list[Replay]:
    """Make these deliveries (or every failed one) due again, then try each of them now."""
    with db.reading() as conn:
        named = store.lookup(conn, keys=keys)
        failed = store.failed_ids(conn) if all_failed else []
    found = {entry.delivery_key for entry in named}
    replays = [Replay(key, "not found") for key in dict.fromkeys(keys) if key not in found]
    replays += [
        Replay(e.delivery_key, "processed already", e.channel)
        for e in named
        if e.state == "processed"
    ]
    ids = list(dict.fromkeys([*(e.id for e in named if e.state != "processed"), *failed]))
    if not ids:
        return replays
    db.run(lambda uow: store.requeue(uow.connection, ids, now=utcnow()))
    for inbox_id in ids:
        process_stored(db, inbox_id, settings)
    with db.reading() as conn:
        after = store.lookup(conn, ids=ids)
    return replays + [Replay(e.delivery_key, e.state, e.channel, e.last_error) for e in after]


def is_permanent(exc: BaseException) -> bool:
    """Whether trying again cannot help: it does not parse, or an item is refused for good
    (a domain rule, data no backend takes), so the item-by-item pass applies the others.

    Anything else (the database, a bug about to be fixed by a deploy) is worth retrying.
    """
    return isinstance(exc, PayloadError) or ingest.is_refusal(exc)


def _is_not_outage(exc: BaseException) -> bool:
    return not (dialect.is_unavailable(exc) or dialect.is_retryable(exc))


def describe(exc: BaseException) -> str:
    """An error as kept in `inbox.last_error` (bounded; payloads can be large)."""
    return f"{type(exc).__name__}: {exc}"[:_ERROR_LENGTH]
