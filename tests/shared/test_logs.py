"""Log lines and tracebacks carry no values from the database's error text."""

from __future__ import annotations

import logging
import sys

from shared.logs import LogFormatter


def _record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise RuntimeError("handling the event failed") from exc
    except RuntimeError:
        return logging.LogRecord("billhook.web", logging.ERROR, __file__, 1, "database error", None, sys.exc_info())


def test_a_logged_database_error_keeps_its_traceback_but_not_the_values_it_quotes(database_errors):
    formatter = LogFormatter("%(levelname)s %(name)s %(message)s")
    for kind, exc in database_errors.items():
        text = formatter.format(_record_of(exc))

        assert "example.com" not in text, (kind, text)
        assert text.startswith("ERROR billhook.web database error\nTraceback (most recent call last):")
        assert "sqlalchemy.exc.IntegrityError" in text and "message withheld" in text
        assert "direct cause" in text and text.endswith("RuntimeError: handling the event failed")


def test_a_postgresql_error_is_logged_with_its_sqlstate_and_constraint(pg_database_errors):
    text = LogFormatter().format(_record_of(pg_database_errors["unique"]))

    assert "(psycopg.errors.UniqueViolation) sqlstate 23505 constraint uq_child_email" in text
    assert "example.com" not in text


def test_other_errors_are_logged_as_usual():
    record = _record_of(KeyError("plan_id"))

    assert "KeyError: 'plan_id'" in LogFormatter().format(record)
