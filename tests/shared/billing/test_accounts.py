"""Accounts: created on first sight, filled in but never blanked, linked to one Stripe customer."""

from __future__ import annotations

from shared.billing.accounts import account_for_stripe_customer, ensure_account, link_stripe_customer, lock_account
from shared.models import Account


def test_ensure_account_creates_once_and_fills_in_but_never_blanks(session):
    ensure_account(session, "acct_1", email="first@example.com", name="Ada")

    again = ensure_account(session, "acct_1")
    updated = ensure_account(session, "acct_1", email="second@example.com")

    assert session.query(Account).count() == 1
    assert again is updated
    assert (updated.email, updated.name) == ("second@example.com", "Ada")


def test_a_stripe_customer_is_linked_once_and_found_again(session):
    account = ensure_account(session, "acct_1")

    link_stripe_customer(session, account, "cus_A")
    link_stripe_customer(session, account, "cus_B")

    assert account.stripe_customer_id == "cus_A"
    assert account_for_stripe_customer(session, "cus_A") is account
    assert account_for_stripe_customer(session, "cus_B") is None
    assert account_for_stripe_customer(session, None) is None


def test_a_customer_already_linked_to_another_account_is_left_alone(session):
    first = ensure_account(session, "acct_1")
    link_stripe_customer(session, first, "cus_A")
    second = ensure_account(session, "acct_2")

    link_stripe_customer(session, second, "cus_A")

    assert second.stripe_customer_id is None
    assert account_for_stripe_customer(session, "cus_A") is first


def test_a_locked_account_is_read_again_in_the_next_transaction_not_remembered(session_factory):
    with session_factory.begin() as setup:
        ensure_account(setup, "acct_2", email="old@example.com")

    with session_factory() as session:  # no explicit begin: the lock opens the transaction
        assert lock_account(session, "acct_2").email == "old@example.com"
        session.commit()
        with session_factory.begin() as other:
            other.get(Account, "acct_2").email = "new@example.com"

        assert lock_account(session, "acct_2").email == "new@example.com"


def test_a_second_lock_in_the_same_transaction_returns_the_locked_row(session_factory):
    with session_factory.begin() as session:
        first = ensure_account(session, "acct_3")

        assert lock_account(session, "acct_3") is first
        assert ensure_account(session, "acct_3", email="later@example.com") is first
        assert first.email == "later@example.com"
