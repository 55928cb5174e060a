"""JSON at the edge: one strict parser for what clients and providers send, and responses that
render datetimes as ISO 8601 (Flask's default is the RFC 822 HTTP-date form)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask.json.provider import DefaultJSONProvider


class IsoJSONProvider(DefaultJSONProvider):
    @staticmethod
    def default(o):
        if isinstance(o, datetime | date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


class MalformedJson(ValueError):
    """The bytes are not standard JSON that the store can keep as it is."""


def _refuse_constant(name: str) -> None:
    raise MalformedJson(f"{name} is not standard JSON")


def loads_strict(raw: bytes) -> Any:
    """Standard JSON only (RFC 8259), in the form PostgreSQL's json type stores unchanged: UTF-8
    without a byte order mark, no NaN/Infinity, no lone surrogate escapes, nesting no deeper
    than the parser's recursion bound. What passes is safe to store as it was received."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise MalformedJson("a byte order mark is not allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson("the body is not UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise MalformedJson("the JSON is nested too deeply") from exc
    except MalformedJson:
        raise
    except ValueError as exc:
        raise MalformedJson("the body is not valid JSON") from exc
    # A lone surrogate can only come from a \uD8xx-\uDFxx escape: look only when one is there.
    if "\\ud" in text.lower() and _has_lone_surrogate(value):
        raise MalformedJson("the JSON holds a lone surrogate escape")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
