"""The end of every scenario: wait (bounded) until the run's messages are stored and their
events are in the stream, then check stored-once, every event once, per-aggregate order, and
print the counts (the figures docs/reliability.md quotes)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from tests.support.events import assert_in_aggregate_order, read_stream, stream_count
from tests.support.ledger import Ledger, read_ledger, stream_report, waited
from tests.support.load import Tally


def settle(db_url: str, prefix: str, tally: Tally, *, timeout: float = 90.0) -> Ledger:
    """Wait (at most `timeout`) until every acknowledged message is stored and no delivery
    waits in the inbox; the ledger as it then is (the assertions come after the figures)."""

    def stored() -> bool:
        ledger = read_ledger(db_url, prefix)
        return ledger.unprocessed_deliveries == 0 and tally.acknowledged <= set(ledger.stored)

    with contextlib.suppress(AssertionError):
        waited(stored, timeout=timeout, what="acknowledged messages stored", every=0.5)
    return read_ledger(db_url, prefix)


def assert_stored_once(ledger: Ledger, tally: Tally) -> None:
    """Every acknowledged message stored exactly once, and nothing stored that was never sent."""
    missing = tally.acknowledged - set(ledger.stored)
    assert not missing, (
        f"{len(missing)} acknowledged messages not stored, e.g. {sorted(missing)[:3]}"
    )
    assert ledger.duplicates == 0, f"{ledger.duplicates} messages stored twice"
    per_message = [e["message_id"] for e in ledger.events if e["type"] == "message.inbound.created"]
    assert len(per_message) == len(set(per_message)), "a message has two created events"
    assert len(per_message) >= len(ledger.stored)


def stream_state(nats_url: str, ledger: Ledger, *, timeout: float = 120.0) -> dict[str, Any]:
    """Wait (at most `timeout`) until the stream holds as many events as the outbox; then the
    counts against the outbox, how long that took, and whether each aggregate is in order."""
    expected = {e["event_id"] for e in ledger.events}
    try:
        caught_up: float | None = waited(
            lambda: stream_count(nats_url) >= len(expected),
            timeout=timeout,
            what=f"{len(expected)} events in the stream",
            every=0.5,
        )
    except AssertionError:
        caught_up = None
    stream = read_stream(nats_url)
    try:
        assert_in_aggregate_order(m["event"] for m in stream)
        in_order = True
    except AssertionError:
        in_order = False
    report = stream_report(stream, expected)
    caught = None if caught_up is None else round(caught_up, 1)
    return {**report, "stream_caught_up_s": caught, "aggregates_in_order": in_order}


def assert_stream_complete(state: dict[str, Any]) -> None:
    """Every outbox event in the stream exactly once by id, each aggregate in order."""
    assert state["missing"] == 0, state
    assert state["repeated"] == 0, state
    assert state["unexpected"] == 0, state
    assert state["aggregates_in_order"], state


def figures(scenario: str, **counts: Any) -> None:
    """Print a scenario's figures on one line (run pytest with -s to see them)."""
    print(f"\nRELIABILITY {scenario} {json.dumps(counts, sort_keys=True, default=str)}")


def backend(db_url: str) -> str:
    """`sqlite` or `postgresql`, for labels."""
    return db_url.split(":")[0].split("+")[0]


def ledger_figures(ledger: Ledger, tally: Tally) -> dict[str, int]:
    """Stored, duplicates, acknowledged but not stored, deliveries still in the inbox."""
    return {
        "stored": len(ledger.stored),
        "duplicates": ledger.duplicates,
        "acknowledged_not_stored": len(tally.acknowledged - set(ledger.stored)),
        "inbox_waiting": ledger.unprocessed_deliveries,
    }
