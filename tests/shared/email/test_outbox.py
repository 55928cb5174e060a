from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.billing.accounts import ensure_account
from shared.email import outbox
from shared.models import EmailOutbox
from shared.outcome import Outcome


def _queue(session, outcome=None, key="k1", **overrides):
    values = {
        "account_id": "acct_1",
        "recipient": "ada@example.com",
        "template": "payment_confirmation",
        "context": {"amount": "$9.00"},
        "idempotency_key": key,
    }
    values.update(overrides)
    return outbox.queue_email(session, outcome if outcome is not None else Outcome(), **values)


def test_same_key_queues_one_email(seeded):
    with seeded.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com")
        first = Outcome()
        assert _queue(session, first) is True
        assert _queue(session, first) is False
    with seeded.begin() as session:
        again = Outcome()
        assert _queue(session, again) is False
        assert again.emails == []
        rows = session.scalars(select(EmailOutbox)).all()
    assert [r.id for r in rows] == first.emails
    assert rows[0].status == outbox.PENDING and rows[0].attempts == 0


def test_rolled_back_transaction_leaves_no_email(seeded):
    with pytest.raises(RuntimeError), seeded.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com")
        _queue(session)
        raise RuntimeError("the effect failed")
    with seeded.begin() as session:
        assert session.scalars(select(EmailOutbox)).all() == []
        ensure_account(session, "acct_1", email="ada@example.com")
        assert _queue(session) is True


def test_unknown_template_is_refused(session):
    with pytest.raises(ValueError, match="unknown email template"):
        _queue(session, template="nope", account_id=None)


def test_account_without_address_is_queued_for_the_address_to_be_filled_in_later(session):
    ensure_account(session, "acct_2", name="Bob")
    assert outbox.queue_account_email(
        session, Outcome(), "acct_2", template="low_credits", context={}, idempotency_key="x"
    )
    row = session.scalars(select(EmailOutbox)).one()
    assert (row.recipient, row.context) == ("", {"name": "Bob"})


def test_unknown_account_gets_no_email(session):
    assert not outbox.queue_account_email(
        session, Outcome(), "acct_404", template="low_credits", context={}, idempotency_key="y"
    )


def test_sweep_finds_pending_rows_after_grace_and_touch_restarts_the_clock(session, now):
    ensure_account(session, "acct_1", email="ada@example.com")
    queued = Outcome()
    _queue(session, queued, at=now)
    [row_id] = queued.emails
    assert outbox.due_for_sweep(session, now=now + timedelta(seconds=30), grace_seconds=60) == []
    later = now + timedelta(seconds=61)
    assert outbox.due_for_sweep(session, now=later, grace_seconds=60) == [row_id]
    outbox.restart_sweep_clock(session, [row_id], at=later)
    assert outbox.due_for_sweep(session, now=later + timedelta(seconds=30), grace_seconds=60) == []
