"""insert_ignore: the unique constraint decides; an inserted row comes back as a loaded object."""

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


def test_an_inserted_row_is_a_loaded_object_of_the_session_whose_changes_flush_as_updates(seeded, session):
    from sqlalchemy import inspect

    from shared.db import insert_ignore_row, insert_row
    from shared.models import Payment
    from tests.statements import Statements

    insert_row(session, Account, {"id": "acct_3", "email": "a@example.com"})
    values = {
        "account_id": "acct_3",
        "provider": "stripe",
        "provider_payment_id": "in_1",
        "kind": "subscription",
        "status": "succeeded",
        "amount_cents": 900,
        "currency": "usd",
    }
    payment = insert_ignore_row(session, Payment, values, ["provider", "provider_payment_id"])

    state = inspect(payment)
    assert state.persistent and not state.expired_attributes and not state.modified
    assert session.get(Payment, payment.id) is payment  # the identity map has it: no second load
    assert (payment.amount_refunded_cents, payment.credits_granted) == (0, 0)  # the defaults, as written
    assert insert_ignore_row(session, Payment, values, ["provider", "provider_payment_id"]) is None
    payment.status = "refunded"
    with Statements(seeded) as statements:
        session.flush()
    assert [s.split()[0] for s in statements.seen] == ["update"]
    assert session.scalar(select(Payment.status).filter_by(id=payment.id)) == "refunded"
