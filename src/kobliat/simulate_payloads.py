"""Sample payloads made unique for `kobliat simulate`: fresh ids, now as the time, many senders.

The samples in `kobliat.channels.samples` are deterministic (one sender, fixed ids), which
suits fixtures; a simulation needs every request to be a new message from one of N senders.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from kobliat.channels.samples.catalog import CATALOG

Obj = dict[str, Any]
_NAMES = (
    "Priya Natarajan",
    "Tomás Ferreira",
    "Joana Silva",
    "Ana Souza",
    "Lupita Hernández",
    "Ravi Kumar",
    "Chen Wei",
    "Amara Okafor",
    "Lucas Martin",
    "Fatima Zahra",
    "Sven Lindqvist",
    "Aiko Tanaka",
)
_TELEGRAM_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")


@dataclass
class Ids:
    """Fresh ids for one simulation run (a run prefix keeps runs apart)."""

    run: str = field(default_factory=lambda: secrets.token_hex(4))
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _numbers: itertools.count[int] = field(
        default_factory=lambda: itertools.count(random.randrange(10**8, 9 * 10**8))
    )

    def text(self, prefix: str) -> str:
        """A unique string id, e.g. `wamid.sim3f9a-17`."""
        return f"{prefix}{self.run}-{next(self._counter)}"

    def number(self) -> int:
        """A unique positive integer (Telegram update and message ids)."""
        return next(self._numbers)


@dataclass(frozen=True, slots=True)
class Sender:
    """One simulated customer, with its address on every channel."""

    n: int

    @property
    def name(self) -> str:
        """A display name (numbered once the list runs out)."""
        base = _NAMES[self.n % len(_NAMES)]
        return base if self.n < len(_NAMES) else f"{base} {self.n // len(_NAMES) + 1}"

    @property
    def wa_id(self) -> str:
        """A WhatsApp id: a UK mobile number in the range kept for drama, digits only."""
        return f"4477009{self.n:05d}"

    @property
    def telegram_id(self) -> int:
        """A Telegram user id."""
        return 600_000_000 + self.n

    @property
    def sms(self) -> str:
        """An SMS number."""
        return f"+4477009{self.n:05d}"

    @property
    def twilio_whatsapp(self) -> str:
        """A WhatsApp address as Twilio writes it (a Brazilian mobile)."""
        return f"whatsapp:+551199{self.n:07d}"

    @property
    def email(self) -> str:
        """A generic-channel identity."""
        return f"customer{self.n}@example.com"


def samples() -> list[tuple[str, str]]:
    """(channel, sample name) of every sample in the catalog, channels interleaved.

    Interleaved so that even a short run reaches every channel.
    """
    per_channel = [[(channel, name) for name in builders] for channel, builders in CATALOG.items()]
    mixed = itertools.zip_longest(*per_channel)
    return [kind for row in mixed for kind in row if kind is not None]


def build(channel: str, name: str, sender: Sender, ids: Ids) -> bytes:
    """The body of one request: the named sample with fresh ids, now and this sender."""
    sample = CATALOG[channel][name]()
    if isinstance(sample, list):  # Twilio: form pairs
        return urlencode(_twilio(sample, sender, ids)).encode()
    document = json.loads(sample)
    if channel == "whatsapp":
        _whatsapp(document, sender, ids)
    elif channel == "telegram":
        _telegram(document, sender, ids)
    else:
        _generic(document, sender, ids)
    return json.dumps(document, ensure_ascii=False).encode()


def _whatsapp(document: Obj, sender: Sender, ids: Ids) -> None:
    now = str(int(time.time()))
    for entry in document.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            for contact in value.get("contacts", []):
                contact["profile"]["name"] = sender.name
                if "wa_id" in contact:
                    contact["wa_id"] = sender.wa_id
                if "user_id" in contact:
                    contact["user_id"] = f"GB.{sender.telegram_id}"
            for message in value.get("messages", []):
                message.update(id=ids.text("wamid.sim"), timestamp=now)
                if "from" in message:
                    message["from"] = sender.wa_id
                if "from_user_id" in message:
                    message["from_user_id"] = f"GB.{sender.telegram_id}"
            for status in value.get("statuses", []):
                status.update(id=ids.text("wamid.out"), timestamp=now)


def _telegram(document: Obj, sender: Sender, ids: Ids) -> None:
    document["update_id"] = ids.number()
    person = {"id": sender.telegram_id, "is_bot": False, "first_name": sender.name}
    for kind in _TELEGRAM_MESSAGE_KINDS:
        message = document.get(kind)
        if isinstance(message, dict):
            message.update(message_id=ids.number(), date=int(time.time()))
            if "from" in message:
                message["from"] = person
            if message.get("chat", {}).get("type") == "private":
                message["chat"] = {**person, "type": "private"}
                del message["chat"]["is_bot"]
    query = document.get("callback_query")
    if isinstance(query, dict):
        query.update(id=str(ids.number()), **{"from": person})


def _twilio(pairs: list[tuple[str, str]], sender: Sender, ids: Ids) -> list[tuple[str, str]]:
    fields = dict(pairs)
    sid = ids.text("SM").replace("-", "")
    inbound = "MessageStatus" not in fields
    address = (
        sender.twilio_whatsapp if fields.get("From", "").startswith("whatsapp:") else sender.sms
    )
    replaced: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in ("MessageSid", "SmsSid", "SmsMessageSid"):
            value = sid
        elif inbound and name == "From":
            value = address
        elif inbound and name == "ProfileName":
            value = sender.name
        elif inbound and name == "WaId":
            value = address.removeprefix("whatsapp:+")
        replaced.append((name, value))
    return replaced


def _generic(document: Obj, sender: Sender, ids: Ids) -> None:
    messages = document.get("messages", [document] if "id" in document else [])
    for message in messages:
        message.update(id=ids.text("msg_sim"), timestamp=int(time.time()))
        message["from"] = {"type": "email", "id": sender.email, "name": sender.name}
    statuses = document.get("statuses", [])
    if "status" in document:
        statuses = [document["status"]]
    for status in statuses:
        status.update(message_id=ids.text("out_sim"), timestamp=int(time.time()))
