"""Send-queue use cases: queue a reply with its message, claim due sends, record outcomes.

Each function runs inside one unit of work (or a read transaction) and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row

from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.messages import service as messages
from kobliat.messages.model import Message
from kobliat.sending import plan, store
from kobliat.sending.model import Job, Outcome, Route, retry_delay
from kobliat.settings import Settings

# Outcome of a recorded attempt, for the metrics: sent, retried, failed, unknown.
Recorded = str


def queue_reply(uow: UnitOfWork, message: Message, settings: Settings) -> bool:
    """Queue a just-posted outbound message for sending when its channel sends; True if queued.

    Raises the channel's refusal (422/409) so the whole request is rolled back.
    """
    route = plan.route_for(uow.connection, message, settings, now=utcnow())
    if route is None:
        return False
    store.enqueue(
        uow.connection,
        message_id=message.id,
        conversation_id=message.conversation_id,
        route=route,
        now=message.created_at,
    )
    return True


def claim(
    uow: UnitOfWork, *, owner: str, limit: int, lease: timedelta, providers: tuple[str, ...]
) -> list[Job]:
    """Lease due sends (each the oldest unfinished one of its conversation)."""
    at = store.now(uow.connection)
    rows = store.claim(
        uow.connection, owner=owner, limit=limit, lease=lease, at=at, providers=providers
    )
    return [_job(uow.connection, row) for row in rows]


def has_due(conn: Connection, *, providers: tuple[str, ...]) -> bool:
    """Whether a claim could find something (read-only, so an idle sender takes no lock)."""
    return store.has_due(conn, at=store.now(conn), providers=providers)


def _job(conn: Connection, row: Row[Any]) -> Job:
    message = messages.get(conn, row.message_id)
    return Job(
        id=int(row.id),
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        route=Route.from_json(row.route),
        attempts=row.attempts,
        channel=message.channel,
        content_type=message.content_type,
        body=message.body,
        metadata=message.metadata,
    )


def release(uow: UnitOfWork, job_ids: list[int], *, owner: str) -> int:
    """Give back claimed sends that were never attempted."""
    return store.release(uow.connection, job_ids, owner=owner)


def recover_expired(
    uow: UnitOfWork, *, limit: int, resend_safe: frozenset[str]
) -> list[tuple[Job, Recorded]]:
    """Settle sends whose sender died mid-attempt: the request may have reached the provider.

    Providers that deduplicate a repeated request (`resend_safe`) get it again; for the others
    the message is marked failed with an "outcome unknown" error rather than risk a double send.
    """
    settled = []
    expired = store.expired(uow.connection, at=store.now(uow.connection), limit=limit)
    for job in (_job(uow.connection, row) for row in expired):
        outcome = Outcome(
            "unknown",
            error={
                "code": "send-outcome-unknown",
                "message": "the sender stopped while the request was in flight",
            },
        )
        settled.append((job, _apply(uow, job, outcome, resend_safe=resend_safe, policy=None)))
    return settled


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a retryable send again, and when to give up."""

    base: float
    cap: float
    max_attempts: int


def record(
    uow: UnitOfWork,
    job: Job,
    outcome: Outcome,
    *,
    owner: str,
    policy: RetryPolicy,
    resend_safe: frozenset[str],
) -> Recorded:
    """Apply an attempt's outcome to the queue row and the message; what it came to."""
    if not store.holds(uow.connection, job.id, owner=owner):
        # The lease ran out and another sender settled the row meanwhile. A success still
        # counts: the provider has the message, so the message says so.
        if outcome.kind == "sent" and outcome.external_message_id:
            messages.record_sent(
                uow, job.message_id, external_message_id=outcome.external_message_id, at=utcnow()
            )
            store.remove(uow.connection, job.id)
        return "late"
    return _apply(uow, job, outcome, resend_safe=resend_safe, policy=policy)


def _apply(
    uow: UnitOfWork,
    job: Job,
    outcome: Outcome,
    *,
    resend_safe: frozenset[str],
    policy: RetryPolicy | None,
) -> Recorded:
    conn, at = uow.connection, store.now(uow.connection)
    kind = outcome.kind
    if kind == "unknown" and job.route.provider in resend_safe:
        kind = "retry"
    if kind == "sent":
        assert outcome.external_message_id is not None
        messages.record_sent(
            uow, job.message_id, external_message_id=outcome.external_message_id, at=at
        )
        store.remove(conn, job.id)
        return "sent"
    error = outcome.error or {"code": "unknown"}
    if kind == "retry" and (policy is None or job.attempts < policy.max_attempts):
        delay = (
            0.0
            if policy is None
            else retry_delay(
                job.attempts, base=policy.base, cap=policy.cap, retry_after=outcome.retry_after
            )
        )
        store.reschedule(
            conn, job.id, at=at, retry_at=at + timedelta(seconds=delay), error=_text(error)
        )
        return "retried"
    if kind == "retry":
        error = {**error, "attempts": job.attempts, "gave_up": True}
    messages.record_send_failure(uow, job.message_id, error=error, at=at)
    store.fail(conn, job.id, at=at, error=_text(error))
    return "unknown" if kind == "unknown" else "failed"


def _text(error: dict[str, Any]) -> str:
    return " ".join(
        str(error.get(k)) for k in ("http_status", "code", "message") if error.get(k) is not None
    )


def failed(conn: Connection, *, limit: int) -> list[Row[Any]]:
    """Failed sends, most recent first."""
    return store.failed(conn, limit=limit)


def pending(conn: Connection, *, limit: int) -> list[Row[Any]]:
    """Queued and in-flight sends, oldest first."""
    return store.pending(conn, limit=limit)


def retry(uow: UnitOfWork, *, message_ids: list[UUID]) -> list[UUID]:
    """Queue failed sends again (the named messages', or every failed one); which were."""
    return store.requeue(uow.connection, message_ids=message_ids, at=store.now(uow.connection))


def prune_failed(uow: UnitOfWork, *, older_than: timedelta, limit: int = 5000) -> int:
    """Forget up to `limit` failed sends that failed longer than `older_than` ago (their
    messages keep the failure); how many went. Queued and in-flight sends are never touched."""
    before = store.now(uow.connection) - older_than
    return store.prune_failed(uow.connection, before=before, limit=limit)


def backlog(conn: Connection) -> dict[str, int]:
    """Sends queued, in flight and failed."""
    return store.counts(conn)
