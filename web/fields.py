"""What a client's text and numbers may hold before they reach the store: the one set of checks
behind the JWT claims, the API bodies, the headers and the query parameters.

PostgreSQL's text refuses NUL and its json refuses a lone surrogate or NaN, so what fails here
would otherwise fail inside the INSERT, as a 500; control characters and surrounding whitespace
are refused too, because an id that differs from another only by them is another account to the
store and the same one to a person reading ops or logs.
"""

from __future__ import annotations

import math
import re
from typing import Any

MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
# The store's own ids (inbox events, outbox emails) are PostgreSQL integers.
MAX_ID = 2**31 - 1

# C0 and C1 controls (but tab, newline and carriage return), and surrogates: text on several
# lines (an email's context) may hold line breaks, never these.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029]")


def is_identifier(value: object, limit: int) -> bool:
    """An id (account, plan, package, order, key): 1 to `limit` printable characters, no
    whitespace around them. Python's "printable" leaves out every control, separator and
    surrogate but the ASCII space."""
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable() and value.strip(" ") == value


def is_line(value: object, limit: int) -> bool:
    """Free text on one line (a display name, a description): at most `limit` characters, no
    control character, line break or lone surrogate."""
    return (
        isinstance(value, str) and len(value) <= limit and not _NOT_TEXT.search(value) and not _LINE_BREAK.search(value)
    )


def is_text(value: object, limit: int) -> bool:
    """Free text that may span lines: at most `limit` characters, no NUL, other control character
    or lone surrogate."""
    return isinstance(value, str) and len(value) <= limit and not _NOT_TEXT.search(value)


def is_int64(value: object) -> bool:
    """A JSON integer (not a bool) that fits PostgreSQL's bigint."""
    return isinstance(value, int) and not isinstance(value, bool) and MIN_INT64 <= value <= MAX_INT64


def is_id(value: object) -> bool:
    """One of the store's ids: a positive integer its integer column holds."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def parse_id(text: str | None) -> int | None:
    """A query parameter or path segment naming one of the store's ids; None when it is not one
    (ASCII digits only, no sign or spaces, within the column's range)."""
    if text is None or not re.fullmatch(r"[0-9]{1,10}", text):
        return None
    value = int(text)
    return value if is_id(value) else None


class Unstorable(ValueError):
    """A JSON value the store could not keep, or one deeper or larger than an API accepts."""


def check_storable(value: Any, *, max_depth: int, max_string: int) -> None:
    """Raise Unstorable unless every part of `value` is one the store keeps as given: strings
    (keys included) by `is_text`, integers within 64 bits, finite floats, nesting at most
    `max_depth` deep. Iterative, so no depth can exhaust the interpreter's stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise Unstorable(f"nested deeper than {max_depth} levels")
        if isinstance(item, str):
            if not is_text(item, max_string):
                raise Unstorable(f"a string is over {max_string} chars or holds a control character or lone surrogate")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not is_int64(item):
                raise Unstorable("an integer is outside the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise Unstorable("a number is NaN or infinite")
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, depth + 1))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        else:
            raise Unstorable(f"a {type(item).__name__} is not JSON")
