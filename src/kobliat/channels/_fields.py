"""Typed reads from decoded JSON that fail with a PayloadError naming the path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from kobliat.channels.records import PayloadError

JsonObject = dict[str, Any]


def load_object(raw_body: bytes, *, what: str) -> JsonObject:
    """Decode a JSON body that must be an object."""
    try:
        decoded = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        # orjson is stricter (NaN, integers past 64 bits, lone surrogates): the standard
        # parser decides those, so what a channel accepts does not change.
        try:
            decoded = json.loads(raw_body)
        # ValueError covers bad JSON, bad encodings and integers past Python's digit limit.
        except (ValueError, RecursionError) as exc:
            raise PayloadError(f"{what} body is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PayloadError(f"{what} body must be a JSON object, got {_kind(decoded)}")
    return decoded


def req_obj(obj: JsonObject, key: str, path: str) -> JsonObject:
    """A required object member."""
    value = _required(obj, key, path)
    if not isinstance(value, dict):
        raise _wrong_type(path, key, "an object", value)
    return value


def req_list(obj: JsonObject, key: str, path: str) -> list[Any]:
    """A required array member."""
    value = _required(obj, key, path)
    if not isinstance(value, list):
        raise _wrong_type(path, key, "an array", value)
    return value


def req_str(obj: JsonObject, key: str, path: str) -> str:
    """A required non-empty string member."""
    value = _required(obj, key, path)
    if not isinstance(value, str) or not value:
        raise _wrong_type(path, key, "a non-empty string", value)
    return value


def req_int(obj: JsonObject, key: str, path: str) -> int:
    """A required integer member (booleans are not integers here)."""
    value = _required(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(path, key, "an integer", value)
    return value


def opt_list(obj: JsonObject, key: str, path: str) -> list[Any]:
    """An optional array member; absent or null reads as empty."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong_type(path, key, "an array", value)
    return value


def opt_int(obj: JsonObject, key: str, path: str) -> int | None:
    """An optional integer member (booleans are not integers here)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(path, key, "an integer", value)
    return value


def opt_obj(obj: JsonObject, key: str, path: str) -> JsonObject | None:
    """An optional object member."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type(path, key, "an object", value)
    return value


def opt_str(obj: JsonObject, key: str, path: str) -> str | None:
    """An optional string member."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(path, key, "a string", value)
    return value


def objects(items: list[Any], path: str) -> Iterator[tuple[str, JsonObject]]:
    """Each element of an array that must hold objects, with its path."""
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{item_path} must be an object, got {_kind(item)}")
        yield item_path, item


def each_obj(obj: JsonObject, key: str, path: str) -> Iterator[tuple[str, JsonObject]]:
    """Each element of an optional array member that must hold objects, with its path."""
    return objects(opt_list(obj, key, path), _join(path, key))


def soft_obj(obj: JsonObject, key: str) -> JsonObject:
    """A member expected to be an object, or {} when absent or of another type."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def soft_str(obj: JsonObject, key: str) -> str | None:
    """A member expected to be a string, or None when absent or of another type."""
    value = obj.get(key)
    return value if isinstance(value, str) else None


def soft_list(obj: JsonObject, key: str) -> list[Any]:
    """A member expected to be an array, or [] when absent or of another type."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def is_set(value: Any) -> bool:
    """Whether a member says something: not null, `false`, or an empty string, array or object.

    Bot frameworks serialise every field of their models, so a flag such as
    `"group_chat_created": false` is as common as its absence and means the same.
    """
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def present(**values: Any) -> JsonObject:
    """The given members without the None ones, so metadata merges never erase with nulls."""
    return {key: value for key, value in values.items() if value is not None}


def _required(obj: JsonObject, key: str, path: str) -> Any:
    if key not in obj or obj[key] is None:
        raise PayloadError(f"{_join(path, key)} is missing")
    return obj[key]


def _wrong_type(path: str, key: str, expected: str, value: Any) -> PayloadError:
    return PayloadError(f"{_join(path, key)} must be {expected}, got {_kind(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" if value else "an empty string"
    names = {dict: "an object", list: "an array", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
