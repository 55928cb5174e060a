"""Structured logs: one JSON line per request and per task. Callers pass only ids, types, outcomes
and durations; payloads and secrets are never logged.

Tracebacks go through `LogFormatter`, which prints a database error as its class, SQLSTATE and
constraint only: the driver's text quotes values (a duplicate key, a failing row, PostgreSQL's
context quoting part of a JSON body), which may be personal data or a payload. Engines hide bound
parameters too (shared/db.py), so SQLAlchemy's own text carries none.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import traceback

from sqlalchemy.exc import DBAPIError

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def log_line(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"msg": message, **fields}, default=str, separators=(",", ":")))


class LogFormatter(logging.Formatter):
    """The house format; tracebacks without the values database errors quote."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return format_exception(ei[1]).rstrip("\n")


def format_exception(exc: BaseException) -> str:
    """The exception's traceback with its chain, every database error's message replaced by what
    it is (class, SQLSTATE, constraint)."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts = []
    for error, link in reversed(chain):
        frames = "".join(traceback.format_tb(error.__traceback__))
        head = "Traceback (most recent call last):\n" + frames if frames else ""
        parts.append(f"{head}{_summary(error)}\n{link}")
    return "".join(parts)


def _summary(error: BaseException) -> str:
    if not _is_database_error(error):
        return "".join(traceback.format_exception_only(type(error), error)).rstrip("\n")
    orig = error.orig if isinstance(error, DBAPIError) else error
    words = []
    if orig is not error and orig is not None:
        words.append(f"({type(orig).__module__}.{type(orig).__qualname__})")
    for label, value in (
        ("sqlstate", getattr(orig, "sqlstate", None)),
        ("constraint", getattr(getattr(orig, "diag", None), "constraint_name", None)),
        ("sqlite", getattr(orig, "sqlite_errorname", None)),
    ):
        if value:
            words.append(f"{label} {value}")
    words.append("(message withheld: it may quote values)")
    return f"{type(error).__module__}.{type(error).__qualname__}: {' '.join(words)}"


def _is_database_error(error: BaseException) -> bool:
    # psycopg's errors carry `sqlstate`; sqlite3's are sqlite3.Error.
    return isinstance(error, DBAPIError | sqlite3.Error) or type(error).__module__.startswith("psycopg")


# Libraries whose INFO lines say nothing an operator acts on (alembic announces each of its
# plugins whenever it is imported: 7 lines per worker and beat start).
QUIET_LIBRARIES = ("alembic",)


def quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(level: int = logging.INFO) -> None:
    quiet_libraries()
    root = logging.getLogger()
    if not any(getattr(h, "_billhook", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._billhook = True
        root.addHandler(handler)
    root.setLevel(level)
