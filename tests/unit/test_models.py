"""The domain models' rules, without a database."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kobliat import pagination
from kobliat.conversations.model import Conversation, conversation_key
from kobliat.customers.identity import normalise
from kobliat.customers.model import Customer, merge_patch
from kobliat.errors import InvalidInput, RuleViolation
from kobliat.events.envelope import to_cloudevent
from kobliat.messages.model import Message

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _open(type_: str = "direct", n: int = 2, **extra: object) -> Conversation:
    return Conversation.open(
        type=type_,
        channel="whatsapp",  # type: ignore[arg-type]
        participants=[(uuid4(), None) for _ in range(n)],
        now=NOW,
        **extra,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 3])
def test_direct_needs_exactly_two(n: int) -> None:
    with pytest.raises(RuleViolation, match="exactly 2"):
        _open("direct", n)


def test_multi_needs_two_or_more_and_group_needs_a_name() -> None:
    with pytest.raises(RuleViolation, match="2 or more"):
        _open("multi", 1)
    assert len(_open("multi", 5).participants) == 5
    with pytest.raises(InvalidInput, match="group_name"):
        _open("group", 1)
    with pytest.raises(InvalidInput, match="group_name"):
        _open("group", 1, group_name="   ")
    assert _open("group", 0, group_name="Team").group_name == "Team"


def test_roles_owner_admin_only_in_groups() -> None:
    with pytest.raises(InvalidInput, match="members"):
        Conversation.open(
            type="direct", channel="x", now=NOW, participants=[(uuid4(), "owner"), (uuid4(), None)]
        )
    group = Conversation.open(
        type="group",
        channel="x",
        now=NOW,
        group_name="G",
        participants=[(uuid4(), "owner"), (uuid4(), "admin")],
    )
    assert [p.role for p in group.participants] == ["owner", "admin"]
    with pytest.raises(InvalidInput):
        group.add_participant(uuid4(), role="boss", now=NOW)


def test_lifecycle_transitions() -> None:
    conv = _open()
    pending, events = conv.change_status("pending", now=NOW)
    assert pending.status == "pending" and [e.type for e in events] == ["conversation.updated"]
    closed, events = pending.change_status("closed", now=NOW)
    assert [e.type for e in events] == ["conversation.closed"]
    with pytest.raises(RuleViolation, match="cannot become pending"):
        closed.change_status("pending", now=NOW)
    same, none = closed.change_status("closed", now=NOW)
    assert same is closed and none == ()


def test_reopening_is_an_update_and_an_opening() -> None:
    closed, _ = _open().change_status("closed", now=NOW)
    later = NOW + timedelta(hours=1)
    reopened, events = closed.change_status("open", now=later)
    assert reopened.status == "open"
    assert [e.type for e in events] == ["conversation.updated", "conversation.opened"]
    assert events[0].data["changes"] == {"status": {"from": "closed", "to": "open"}}
    assert events[1].data["participants"] == [str(p.customer_id) for p in closed.participants]
    assert events[1].time == later


def test_multi_conversation_key_follows_its_parties() -> None:
    multi = _open("multi", 3)
    newcomer = uuid4()
    grown, _, _ = multi.add_participant(newcomer, role=None, now=NOW)
    ids = [p.customer_id for p in multi.participants]
    expected = conversation_key("multi", multi.channel, [*ids, newcomer], None)
    assert grown.conversation_key == expected
    shrunk, _ = grown.remove_participant(newcomer, now=NOW)
    assert shrunk.conversation_key == multi.conversation_key
    group = _open("group", 2, group_name="G")
    assert group.add_participant(newcomer, role=None, now=NOW)[0].conversation_key == (
        group.conversation_key
    )


def test_group_fields_refused_on_direct_and_noop_update_raises_no_event() -> None:
    with pytest.raises(InvalidInput):
        _open().update_group(group_name="x", now=NOW)
    group = _open("group", 2, group_name="G")
    unchanged, event = group.update_group(group_name="G", now=NOW)
    assert event is None and unchanged is group


def test_conversation_key_ignores_participant_order() -> None:
    a, b = uuid4(), uuid4()
    assert conversation_key("direct", "sms", [a, b], None) == conversation_key(
        "direct", "sms", [b, a], None
    )
    assert conversation_key("group", "telegram", [a], None) is None


def test_opened_event_carries_the_seed_fields() -> None:
    conv = _open()
    envelope = to_cloudevent(conv.opened_event(), sequence=1)
    assert envelope["specversion"] == "1.0" and envelope["subject"] == str(conv.id)
    data = envelope["data"]
    assert {"event_id", "conversation_id", "type", "participants", "timestamp"} <= set(data)
    assert data["event_id"] == envelope["id"] and data["type"] == "direct"
    assert all(k.isalnum() and k.islower() for k in envelope if k not in ("data",))


def test_customer_update_merges_and_reports_only_changes() -> None:
    customer = Customer.register(
        external_type="telegram", external_id="1", name="A", metadata={"a": {"x": 1}}, now=NOW
    )
    after, event = customer.updated(metadata={"a": {"y": 2}}, now=NOW + timedelta(seconds=1))
    assert after.metadata == {"a": {"x": 1, "y": 2}} and event is not None
    same, none = after.updated(name="A", metadata={"a": {"y": 2}}, now=NOW)
    assert none is None and same is after


@given(
    st.dictionaries(st.text(max_size=3), st.integers() | st.none(), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers() | st.none(), max_size=5),
)
def test_merge_patch_never_keeps_nulls(target: dict, patch: dict) -> None:  # type: ignore[type-arg]
    clean = {k: v for k, v in target.items() if v is not None}
    merged = merge_patch(clean, patch)
    assert None not in merged.values()
    assert all(merged[k] == v for k, v in patch.items() if v is not None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("447700900123", "+447700900123"),
        ("+44 7700 900123", "+447700900123"),
        ("whatsapp:+447700900123", "+447700900123"),
        ("551187654321", "+5511987654321"),
        ("5511987654321", "+5511987654321"),
        ("5215512345678", "+525512345678"),
        ("525512345678", "+525512345678"),
        ("5491123456789", "+5491123456789"),  # Argentina left alone
    ],
)
def test_phone_normalisation(raw: str, expected: str) -> None:
    assert normalise("whatsapp", raw) == ("whatsapp", expected)


def test_other_identities() -> None:
    assert normalise("Email", " Ana@Example.COM ") == ("email", "ana@example.com")
    assert normalise("telegram", "0042") == ("telegram", "42")
    with pytest.raises(InvalidInput):
        normalise("phone", "hello")
    with pytest.raises(InvalidInput):
        normalise("telegram", "  ")


@given(
    st.sampled_from(["telegram", "whatsapp", "sms", "email", "other"]),
    st.text(max_size=30) | st.text(st.sampled_from("-+ 0123456789²٣@a:"), max_size=12),
)
def test_any_identity_normalises_or_is_invalid_input(kind: str, raw: str) -> None:
    with contextlib.suppress(InvalidInput):
        normalise(kind, raw)


@pytest.mark.parametrize("raw", ["²", "--5", "-", "٣"])
def test_telegram_ids_that_are_not_ascii_numbers_are_kept_as_given(raw: str) -> None:
    assert normalise("telegram", raw) == ("telegram", raw)


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=1, max_size=3))
def test_cursors_round_trip_and_reject_other_lists(values: list[int]) -> None:
    cursor = pagination.encode("a", *values)
    assert pagination.decode("a", cursor, *([int] * len(values))) == tuple(values)
    with pytest.raises(pagination.CursorError):
        pagination.decode("b", cursor, *([int] * len(values)))


@given(st.text(max_size=40))
def test_garbage_cursors_are_cursor_errors(cursor: str) -> None:
    with contextlib.suppress(pagination.CursorError):
        pagination.decode("a", cursor, int)


@pytest.mark.parametrize("position", [2**63, -(2**63) - 1, 10**30])
def test_cursor_positions_outside_bigint_are_cursor_errors(position: int) -> None:
    with pytest.raises(pagination.CursorError):
        pagination.decode("a", pagination.encode("a", position), int)


def test_status_rank_is_monotonic() -> None:
    msg = Message.new(
        conversation_id=uuid4(),
        direction="outbound",
        channel="whatsapp",
        content_type="text",
        body="x",
        sent_at=NOW,
        now=NOW,
        status="pending",
    )
    sent, e1 = msg.with_status("sent", error=None, at=NOW, now=NOW)
    failed, e2 = sent.with_status("failed", error={"code": 1}, at=NOW, now=NOW)
    back, e3 = failed.with_status("sent", error=None, at=NOW, now=NOW)
    assert (sent.status, failed.status, back.status) == ("sent", "failed", "failed")
    assert e1 is not None and e2 is not None and e3 is None
    assert failed.metadata["error"] == {"code": 1}


def test_a_group_moves_to_a_new_external_id_with_its_key_and_only_a_group_can() -> None:
    group = _open("group", 2, group_name="Front desk", external_id="-4012")

    moved, event = group.moved_to("-1009", now=NOW)

    assert (moved.external_id, moved.conversation_key) == ("-1009", "group:whatsapp:-1009")
    assert event.type == "conversation.updated"
    assert event.data["changes"]["external_id"] == {"from": "-4012", "to": "-1009"}
    with pytest.raises(InvalidInput):
        _open("direct").moved_to("-1009", now=NOW)
