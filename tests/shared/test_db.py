"""insert_ignore: the unique constraint decides."""

from __future__ import annotations

from sqlalchemy import func, select

from shared.db import insert_ignore
from shared.models import Account


def test_insert_ignore_inserts_once_and_reports_whether_it_did(session):
    assert insert_ignore(session, Account, {"id": "acct_1", "email": "a@example.com"}, ["id"]) is True
    assert insert_ignore(session, Account, {"id": "acct_1", "email": "other@example.com"}, ["id"]) is False

    assert session.scalar(select(func.count()).select_from(Account)) == 1
    assert session.get(Account, "acct_1").email == "a@example.com"


def test_insert_ignore_returns_the_new_rows_column_or_none_for_an_existing_row(session):
    values = {"id": "acct_2"}

    assert insert_ignore(session, Account, values, ["id"], returning=Account.id) == "acct_2"
    assert insert_ignore(session, Account, values, ["id"], returning=Account.id) is None


def test_make_engine_creates_the_sqlite_directory(tmp_path, settings):
    from shared.db import make_engine

    nested = settings.with_overrides(database_url=f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    engine = make_engine(nested)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    assert (tmp_path / "a" / "b" / "x.db").exists()
