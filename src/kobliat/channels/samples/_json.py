"""Serialisation shared by the sample builders."""

from __future__ import annotations

import json
from typing import Any


def dump(payload: dict[str, Any]) -> bytes:
    """Pretty, deterministic JSON bytes (fixtures stay readable and diffable)."""
    return json.dumps(payload, indent=2, ensure_ascii=False).encode()
