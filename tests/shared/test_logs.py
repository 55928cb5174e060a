"""Logging set-up: billhook's lines without library chatter, and tracebacks that carry no values
from the database's error text."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from shared.config import PROJECT_ROOT
from shared.logs import LogFormatter


def test_db_upgrade_prints_one_line_whoever_configured_logging(tmp_path):
    """Alembic announces its plugins and its migration context at INFO: 9 lines per upgrade."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLHOOK_", "DATABASE_URL"))}
    env.update(BILLHOOK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    script = (
        "from shared.logs import configure_logging; configure_logging()\n"
        "from cli.main import main; main(['db', 'upgrade'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip().splitlines() == ["database is at the newest migration"]


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
