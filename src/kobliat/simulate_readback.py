"""What a running server stored, read back through its REST API (the end of `kobliat simulate`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.table import Table

# Reading back walks every conversation's messages: enough for a demo, bounded for big servers.
MAX_CONVERSATIONS = 500


@dataclass
class Stored:
    """Counts by channel of what the server holds."""

    customers: Counter[str] = field(default_factory=Counter)  # by external_type
    conversations: Counter[str] = field(default_factory=Counter)  # by channel
    messages: Counter[str] = field(default_factory=Counter)  # by channel
    truncated: bool = False


def read_back(url: str, api_key: str) -> Stored:
    """Count customers, conversations and messages by channel through the REST API."""
    stored = Stored()
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for customer in _walk(http, "/customers"):
            stored.customers[customer["external_type"]] += 1
        for n, conversation in enumerate(_walk(http, "/conversations")):
            if n == MAX_CONVERSATIONS:
                stored.truncated = True
                break
            channel = conversation["channel"]
            stored.conversations[channel] += 1
            path = f"/conversations/{conversation['id']}/messages"
            stored.messages[channel] += sum(1 for _ in _walk(http, path))
    return stored


def _walk(http: httpx.Client, path: str) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = http.get(path, params=params)
        response.raise_for_status()
        page = response.json()
        yield from page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return


def table(stored: Stored) -> Table:
    """The counts as a table, one row per channel (customers per identity type)."""
    title = "what the server stored"
    if stored.truncated:
        title += f" (conversations and messages of the {MAX_CONVERSATIONS} most recent)"
    out = Table(title=title)
    for column in ("channel", "conversations", "messages"):
        out.add_column(column, justify="left" if column == "channel" else "right")
    for channel in sorted(stored.conversations):
        out.add_row(channel, str(stored.conversations[channel]), str(stored.messages[channel]))
    customers = ", ".join(f"{kind}: {n}" for kind, n in sorted(stored.customers.items()))
    out.caption = f"customers by identity type: {customers or 'none'}"
    return out
