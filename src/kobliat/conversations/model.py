"""The Conversation aggregate: its rules as methods, events raised as data.

Rules:
- direct: exactly 2 participants; multi: 2 or more; group: `group_name` required.
- roles: owner / admin / member in groups; direct and multi participants are members.
- lifecycle: open ⇄ pending, open/pending → closed, closed → open only when no other
  non-closed conversation holds the same key (the database's partial unique index decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from kobliat.errors import InvalidInput, RuleViolation
from kobliat.events.envelope import DomainEvent

ConversationType = Literal["direct", "multi", "group"]
Status = Literal["open", "closed", "pending"]
TYPES: tuple[ConversationType, ...] = ("direct", "multi", "group")
STATUSES: tuple[Status, ...] = ("open", "closed", "pending")
GROUP_ROLES = ("owner", "admin", "member")
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "open": frozenset({"pending", "closed"}),
    "pending": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


@dataclass(frozen=True, slots=True)
class Participant:
    """A customer's membership of a conversation."""

    customer_id: UUID
    role: str
    joined_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation and its participants."""

    id: UUID
    type: ConversationType
    status: Status
    channel: str | None
    external_id: str | None
    conversation_key: str | None
    group_name: str | None
    group_avatar: str | None
    group_metadata: dict[str, Any]
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    participants: tuple[Participant, ...] = ()

    @property
    def activity_at(self) -> datetime:
        """When something last happened: the list order (and the database's last_activity_at)."""
        if self.last_message_at is not None and self.last_message_at > self.created_at:
            return self.last_message_at
        return self.created_at

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        *,
        type: ConversationType,
        channel: str | None,
        participants: Sequence[tuple[UUID, str | None]],
        external_id: str | None = None,
        group_name: str | None = None,
        group_avatar: str | None = None,
        group_metadata: dict[str, Any] | None = None,
        now: datetime,
    ) -> Conversation:
        """A new open conversation; raises InvalidInput/RuleViolation when a rule is broken."""
        if type not in TYPES:
            raise InvalidInput(f"type must be one of {', '.join(TYPES)}", code="invalid-type")
        ids = [customer_id for customer_id, _ in participants]
        if len(set(ids)) != len(ids):
            raise InvalidInput("a customer is listed twice", code="duplicate-participant")
        members = tuple(
            Participant(customer_id=cid, role=check_role(type, role), joined_at=now)
            for cid, role in participants
        )
        check_participant_count(type, len(members))
        if type == "group":
            group_name = check_group_name(group_name)
        elif group_name or group_avatar or group_metadata:
            raise InvalidInput(
                "group_name, group_avatar and group_metadata are for group conversations only",
                code="group-fields-on-non-group",
            )
        return cls(
            id=uuid4(),
            type=type,
            status="open",
            channel=channel,
            external_id=external_id,
            conversation_key=conversation_key(type, channel, ids, external_id),
            group_name=group_name,
            group_avatar=group_avatar,
            group_metadata=dict(group_metadata or {}),
            last_message_at=None,
            created_at=now,
            updated_at=now,
            participants=members,
        )

    def opened_event(self, *, at: datetime | None = None) -> DomainEvent:
        """`conversation.opened`: id, type, channel, group name and the participants' ids (at
        creation, or `at` a reopening)."""
        return self._event(
            "conversation.opened",
            {
                "conversation_id": str(self.id),
                "type": self.type,
                "channel": self.channel,
                "group_name": self.group_name,
                "participants": [str(p.customer_id) for p in self.participants],
            },
            at or self.created_at,
        )

    # --- participants --------------------------------------------------------------------
    def participant(self, customer_id: UUID) -> Participant | None:
        """The membership of this customer, if any."""
        return next((p for p in self.participants if p.customer_id == customer_id), None)

    def add_participant(
        self, customer_id: UUID, *, role: str | None, now: datetime
    ) -> tuple[Conversation, Participant, DomainEvent]:
        """Add a customer; direct conversations never take a third one."""
        if self.participant(customer_id) is not None:
            raise RuleViolation(
                f"customer {customer_id} is already a participant", code="participant-exists"
            )
        member = Participant(
            customer_id=customer_id, role=check_role(self.type, role), joined_at=now
        )
        check_participant_count(self.type, len(self.participants) + 1)
        event = self.participant_added_event(member)
        return self._with_participants((*self.participants, member), now), member, event

    def participant_added_event(self, member: Participant) -> DomainEvent:
        """`conversation.participant.added`: the conversation, the customer and the role."""
        return self._event(
            "conversation.participant.added",
            {
                "conversation_id": str(self.id),
                "customer_id": str(member.customer_id),
                "role": member.role,
            },
            member.joined_at,
        )

    def remove_participant(
        self, customer_id: UUID, *, now: datetime
    ) -> tuple[Conversation, DomainEvent]:
        """Remove a customer, unless that breaks the type's participant count."""
        member = self.participant(customer_id)
        if member is None:
            raise RuleViolation(
                f"customer {customer_id} is not a participant", code="participant-missing"
            )
        check_participant_count(self.type, len(self.participants) - 1)
        remaining = tuple(p for p in self.participants if p.customer_id != customer_id)
        event = self._event(
            "conversation.participant.removed",
            {"conversation_id": str(self.id), "customer_id": str(customer_id)},
            now,
        )
        return self._with_participants(remaining, now), event

    def _with_participants(self, members: tuple[Participant, ...], now: datetime) -> Conversation:
        # A multi conversation is known by its whole set of parties: a new set is a new key.
        if self.type != "multi":
            return replace(self, participants=members)
        ids = [m.customer_id for m in members]
        key = conversation_key(self.type, self.channel, ids, self.external_id)
        return replace(self, participants=members, conversation_key=key, updated_at=now)

    # --- lifecycle and details -----------------------------------------------------------
    def change_status(
        self, status: str, *, now: datetime
    ) -> tuple[Conversation, tuple[DomainEvent, ...]]:
        """Move along the lifecycle; the same status again changes nothing.

        A reopening (closed → open) is `conversation.updated` with the status change, followed
        by `conversation.opened`, so that a consumer of openings sees it too.
        """
        if status not in STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(STATUSES)}", code="invalid-status"
            )
        if status == self.status:
            return self, ()
        if status not in TRANSITIONS[self.status]:
            raise RuleViolation(
                f"a {self.status} conversation cannot become {status}",
                code="invalid-status-transition",
            )
        after = replace(self, status=status, updated_at=now)
        if status == "closed":
            closed = self._event("conversation.closed", {"conversation_id": str(self.id)}, now)
            return after, (closed,)
        updated = self._updated_event({"status": {"from": self.status, "to": status}}, now)
        if self.status == "closed":
            return after, (updated, after.opened_event(at=now))
        return after, (updated,)

    def update_group(
        self,
        *,
        group_name: str | None = None,
        group_avatar: str | None = None,
        group_metadata: dict[str, Any] | None = None,
        now: datetime,
    ) -> tuple[Conversation, DomainEvent | None]:
        """Change a group's name, avatar or metadata (metadata replaces)."""
        if self.type != "group":
            raise InvalidInput(
                "group_name, group_avatar and group_metadata are for group conversations only",
                code="group-fields-on-non-group",
            )
        changes: dict[str, Any] = {}
        if group_name is not None and check_group_name(group_name) != self.group_name:
            changes["group_name"] = group_name.strip()
        if group_avatar is not None and group_avatar != self.group_avatar:
            changes["group_avatar"] = group_avatar
        if group_metadata is not None and group_metadata != self.group_metadata:
            changes["group_metadata"] = group_metadata
        if not changes:
            return self, None
        after = replace(self, updated_at=now, **changes)
        return after, self._updated_event(changes, now)

    def moved_to(self, external_id: str, *, now: datetime) -> tuple[Conversation, DomainEvent]:
        """The group under the provider's new id for it (a Telegram group became a supergroup)."""
        if self.type != "group":
            raise InvalidInput("only a group conversation can move", code="move-of-non-group")
        key = conversation_key(self.type, self.channel, [], external_id)
        changes = {
            "external_id": {"from": self.external_id, "to": external_id},
            "conversation_key": {"from": self.conversation_key, "to": key},
        }
        after = replace(self, external_id=external_id, conversation_key=key, updated_at=now)
        return after, self._updated_event(changes, now)

    def _updated_event(self, changes: dict[str, Any], now: datetime) -> DomainEvent:
        return self._event(
            "conversation.updated", {"conversation_id": str(self.id), "changes": changes}, now
        )

    def _event(self, type_: str, data: dict[str, Any], time: datetime) -> DomainEvent:
        return DomainEvent(
            type=type_, aggregate_type="conversation", aggregate_id=self.id, data=data, time=time
        )


def check_role(type_: str, role: str | None) -> str:
    """The participant's role, `member` by default; only groups know owner and admin."""
    chosen = role or "member"
    if type_ == "group":
        if chosen not in GROUP_ROLES:
            raise InvalidInput(
                f"group roles are {', '.join(GROUP_ROLES)}; got {chosen!r}", code="invalid-role"
            )
    elif chosen != "member":
        raise InvalidInput(
            f"participants of a {type_} conversation are members; got role {chosen!r}",
            code="invalid-role",
        )
    return chosen


def check_participant_count(type_: str, count: int) -> None:
    """direct: exactly 2; multi: 2 or more; group: any."""
    if type_ == "direct" and count != 2:
        raise RuleViolation(
            f"a direct conversation has exactly 2 participants (this would make {count})",
            code="direct-needs-exactly-two-participants",
        )
    if type_ == "multi" and count < 2:
        raise RuleViolation(
            f"a multi conversation has 2 or more participants (this would make {count})",
            code="multi-needs-two-or-more-participants",
        )


def check_group_name(name: str | None) -> str:
    """A group's name: required and not blank."""
    if name is None or not name.strip():
        raise InvalidInput("a group conversation requires group_name", code="group-name-required")
    return name.strip()


def conversation_key(
    type_: str, channel: str | None, participant_ids: Sequence[UUID], external_id: str | None
) -> str | None:
    """The identity that at most one non-closed conversation may hold.

    direct: channel + the two parties; multi: channel + the set of parties; group: channel +
    the group's external id (a group made through the API without one has no key).
    """
    where = channel or "-"
    if type_ == "group":
        return f"group:{where}:{external_id}" if external_id else None
    parties = ",".join(sorted(str(cid) for cid in participant_ids))
    return f"{type_}:{where}:{parties}"
