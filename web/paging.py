"""Keyset paging for the list endpoints: `limit` and an opaque `cursor` in, `next_cursor` out.

A cursor is the sort key of the previous page's last row (e.g. its timestamp and id), as JSON in
URL-safe base64: opaque to clients, and checked here part by part, so a cursor this API did not
write is a 400, never a query the store refuses (a naive timestamp, a string for an id).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime

from flask import request

from web.errors import ApiError
from web.fields import is_id, is_identifier

MAX_KEY = 64  # a string part of a cursor: an account id
CURSOR = re.compile(r"[A-Za-z0-9_=-]{1,300}")  # URL-safe base64 of at most MAX_CURSOR characters
_LIMIT = re.compile(r"[0-9]{1,4}")  # ASCII digits: str.isdigit() also takes "²", which int() refuses


def only_params(*names: str) -> None:
    """Refuse a query parameter the endpoint does not know (a misspelt `limit` would otherwise
    be ignored silently, and the caller would page with the default)."""
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s); this endpoint takes {', '.join(names)}")


def limit_param(default: int, high: int, *, name: str = "limit") -> int:
    """The page size from the query string: `default` when absent, else 1 to `high`."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer from 1 to {high}")
    return int(raw)


def encode_cursor(*parts: datetime | str | int) -> str:
    values = [p.astimezone(UTC).isoformat() if isinstance(p, datetime) else p for p in parts]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def cursor_param(*kinds: type, name: str = "cursor") -> tuple | None:
    """The query string's cursor as a tuple of `kinds` (datetime, str or int, in the order
    `encode_cursor` was given them); None when absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if not CURSOR.fullmatch(raw):
            raise ValueError("not URL-safe base64 of a cursor's length")
        values = json.loads(base64.urlsafe_b64decode(raw.encode()))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_part(kind, value) for kind, value in zip(kinds, values, strict=True))
    except (binascii.Error, ValueError, TypeError) as exc:  # UnicodeError and JSON's are ValueErrors
        raise ApiError(400, "invalid_cursor", f"{name} must be a next_cursor this API returned") from exc


def _part(kind: type, value: object) -> datetime | str | int:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)  # a TypeError when it is no string
        if parsed.tzinfo is None:
            raise ValueError("a cursor's timestamp carries its offset")
        return parsed.astimezone(UTC)
    if kind is int and is_id(value):
        return value
    if kind is str and is_identifier(value, MAX_KEY):
        return value
    raise ValueError(f"not a {kind.__name__}")
