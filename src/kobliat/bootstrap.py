"""The composition root: builds everything from Settings. Nothing is built at import time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from kobliat.auth import KeyChecker
from kobliat.db import migrate
from kobliat.db.engine import Database
from kobliat.inbox.group_commit import GroupCommit
from kobliat.settings import Settings

if TYPE_CHECKING:
    from kobliat.events.relay import Relay
    from kobliat.sending.sender import Sender


@dataclass
class Container:
    """What a running kobliat process holds."""

    settings: Settings
    db: Database
    keys: KeyChecker
    # The webhook hot path's group commit (PostgreSQL); SQLite keeps the general flow.
    ingest_writer: GroupCommit | None = None

    def __post_init__(self) -> None:
        if self.ingest_writer is None and self.db.is_postgres:
            self.ingest_writer = GroupCommit(self.db.url)

    def close(self) -> None:
        """Release connections."""
        if self.ingest_writer is not None:
            self.ingest_writer.close()
        self.db.dispose()


def build(settings: Settings, *, run_migrations: bool = True) -> Container:
    """Connect, migrate (unless told not to) and wire the services."""
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    if run_migrations:
        try:
            migrate.upgrade(db.engine)
        except BaseException:
            db.dispose()
            raise
    return Container(settings=settings, db=db, keys=KeyChecker(db, settings.configured_api_keys()))


def build_when_reachable(settings: Settings, *, first_wait: float = 1.0) -> Container:
    """`build`, waiting while the database is unavailable (a process started before its
    database, or during a failover): the outage is logged once per interval with a count, as a
    running relay logs it, and retried with a back-off of up to 5 s. Any other error is raised."""
    from kobliat.db import dialect
    from kobliat.events.loops import Backoff, FailureLog

    failures = FailureLog(message="database unavailable at start; waiting")
    backoff = Backoff(base=first_wait)
    while True:
        started = time.monotonic()
        try:
            return build(settings)
        except Exception as exc:
            if not dialect.is_unavailable(exc):
                raise
            failures.failed("start", exc)
            time.sleep(backoff.next_wait(time.monotonic() - started))


def build_relay(container: Container) -> Relay:
    """The outbox relay with an HTTP sink, and a NATS sink when KOBLIAT_NATS_URL is set."""
    from kobliat.events.delivery import RetryPolicy
    from kobliat.events.http_sink import HttpSink
    from kobliat.events.nats_sink import NatsSink
    from kobliat.events.relay import Relay, Transport

    settings = container.settings
    transports: list[Transport] = [
        HttpSink(
            timeout=settings.webhook_timeout_seconds,
            concurrency=settings.webhook_concurrency,
            allow_private=settings.subscriptions_allow_private,
            policy=RetryPolicy(
                base_seconds=settings.webhook_retry_base_seconds,
                max_seconds=settings.webhook_retry_max_seconds,
                max_attempts=settings.webhook_max_attempts,
            ),
        )
    ]
    if settings.nats_url:
        # A broker outage must delay events, never dead-letter them: retry without end.
        nats_policy = RetryPolicy(
            base_seconds=min(0.5, settings.nats_retry_max_seconds),
            max_seconds=settings.nats_retry_max_seconds,
            max_attempts=None,
        )
        transports.append(
            NatsSink(
                settings.nats_url,
                stream=settings.nats_stream,
                publish_timeout=settings.nats_publish_timeout_seconds,
                policy=nats_policy,
                claim_limit=settings.relay_batch_size,
                replicas=settings.nats_replicas,
                duplicate_window=settings.nats_duplicate_window_seconds,
            )
        )
    return Relay(
        container.db,
        transports=transports,
        poll_seconds=settings.relay_poll_seconds,
        retention=timedelta(hours=settings.outbox_retention_hours),
    )


def build_sender(container: Container) -> Sender | None:
    """The sender for the providers whose sending is configured; None when there is none."""
    from kobliat.sending import clients, plan
    from kobliat.sending.sender import Sender

    settings = container.settings
    available = plan.configured(settings)
    if not available:
        return None
    return Sender(container.db, clients.build(settings, available), settings)
