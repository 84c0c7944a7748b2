"""Realistic, deterministic webhook payloads for every channel (tests and `kobliat simulate`).

`catalog.CATALOG[channel][name]()` builds a named sample; `signing` makes the headers that
pass each channel's signature check.
"""

from kobliat.channels.samples import (
    catalog,
    generic,
    signing,
    telegram,
    twilio,
    whatsapp,
    whatsapp_messages,
)

__all__ = [
    "catalog",
    "generic",
    "signing",
    "telegram",
    "twilio",
    "whatsapp",
    "whatsapp_messages",
]
