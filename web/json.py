"""JSON at the edge: one strict parser for what clients and providers send, and responses that
render datetimes as ISO 8601 (Flask's default is the RFC 822 HTTP-date form)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask import current_app, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

from web.errors import ApiError


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


# Provider events nest a dozen levels at most; the bound is fixed so that what passes does not
# depend on how deep the interpreter's stack already is when the parser runs.
MAX_DEPTH = 64


def loads_strict(raw: bytes) -> Any:
    """Standard JSON only (RFC 8259), in the form PostgreSQL's json type stores unchanged: UTF-8
    without a byte order mark, no NaN/Infinity, no lone surrogate escapes, nesting at most
    MAX_DEPTH levels. What passes is safe to store as it was received."""
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
    # Fewer brackets than the bound cannot nest past it: walk the value only when there are more.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth_over(value, MAX_DEPTH):
        raise MalformedJson(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


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


def read_body() -> bytes:
    """The request's body, whole, or 413 when it is over MAX_CONTENT_LENGTH however it is sent.
    Werkzeug refuses a Content-Length over the limit, but a chunked body (no Content-Length) it
    reads only up to the limit and returns cut, with no error: a cut webhook would fail its
    signature (400, which the provider takes for a bad body, not a big one). So a streamed body
    that fills the limit is checked for one byte more on the server's own stream."""
    raw = request.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    streamed_to_the_limit = request.content_length is None and limit is not None and len(raw) >= limit
    if streamed_to_the_limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return raw


def json_object() -> dict:
    """The request's body as a JSON object, parsed by `loads_strict`; a 400 otherwise."""
    if not request.is_json:
        raise ApiError(400, "invalid_body", "the body must be a JSON object (Content-Type: application/json)")
    try:
        body = loads_strict(read_body())
    except MalformedJson as exc:
        raise ApiError(400, "invalid_body", f"the body must be a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body
