"""The append-only credit ledger: balances are sums, keys make every entry happen once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.outcome import Outcome


@pytest.fixture
def account(session):
    return ensure_account(session, "acct_ledger", email="l@example.com").id


def grant(session, account, now, key: str, credits: int = 100) -> bool:
    return ledger.grant_credits(
        session,
        Outcome(),
        account_id=account,
        credits=credits,
        kind=ledger.GRANT_PURCHASE,
        description="test grant",
        idempotency_key=key,
        at=now,
    )


def test_balance_is_the_sum_of_the_accounts_entries(session, account, now):
    grant(session, account, now, "k1", 500)
    grant(session, account, now, "k2", 200)
    ledger.add_entry(
        session,
        Outcome(),
        account_id=account,
        amount=-150,
        kind=ledger.DEBIT,
        description="usage",
        idempotency_key="k3",
        at=now,
    )

    assert ledger.balance(session, account) == 550


def test_an_account_without_entries_has_a_zero_balance(session, account):
    assert ledger.balance(session, account) == 0
    assert ledger.balance(session, "acct_nobody") == 0


def test_the_same_idempotency_key_adds_credits_once(session, account, now):
    assert grant(session, account, now, "stripe:checkout:cs_1") is True
    assert grant(session, account, now + timedelta(seconds=1), "stripe:checkout:cs_1", 999) is False

    assert ledger.balance(session, account) == 100
    assert ledger.entry_by_key(session, "stripe:checkout:cs_1").amount == 100


def test_a_zero_entry_or_a_non_positive_grant_is_refused(session, account, now):
    with pytest.raises(ValueError):
        ledger.add_entry(
            session,
            Outcome(),
            account_id=account,
            amount=0,
            kind=ledger.ADJUSTMENT,
            description="",
            idempotency_key="z",
            at=now,
        )
    with pytest.raises(ValueError):
        grant(session, account, now, "neg", -5)


def test_recent_entries_come_newest_first(session, account, now):
    grant(session, account, now, "old", 1)
    grant(session, account, now + timedelta(minutes=1), "new", 2)

    assert [e.idempotency_key for e in ledger.recent_entries(session, account)] == ["new", "old"]


def test_long_descriptions_are_cut_to_fit(session, account, now):
    grant(session, account, now, "long", 1)
    ledger.add_entry(
        session,
        Outcome(),
        account_id=account,
        amount=1,
        kind=ledger.ADJUSTMENT,
        description="d" * 1000,
        idempotency_key="l2",
        at=now,
    )

    assert len(ledger.entry_by_key(session, "l2").description) == 300
