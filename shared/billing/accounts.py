from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.db import for_update, lock_once, lock_or_insert
from shared.models import Account


def ensure_account(session: Session, account_id: str, *, email: str | None = None, name: str | None = None) -> Account:
    """The account, created on first sight and locked for this transaction; known fields are
    filled in, never blanked.

    Lock order: whatever touches an account's billing locks the account first, then its
    subscription, then its payment. Taking the strongest lock up front also keeps a later
    update of the unique `stripe_customer_id` from waiting on another event's foreign-key lock.

    A known account (nearly every event's) costs one statement (see `lock_or_insert`).
    """
    account = lock_or_insert(
        session,
        (Account, account_id),
        _LOCK_ACCOUNT,
        {"account_id": account_id},
        Account,
        {"id": account_id, "email": email, "name": name},
        ["id"],
    )
    if email and account.email != email:
        account.email = email
    if name and account.name != name:
        account.name = name
    return account


def link_stripe_customer(session: Session, account: Account, customer_id: str | None) -> None:
    """Remember the Stripe customer once; a customer already linked elsewhere is left alone."""
    if not customer_id or account.stripe_customer_id:
        return
    taken = session.query(Account.id).filter_by(stripe_customer_id=customer_id).first()
    if taken is None:
        account.stripe_customer_id = customer_id


def account_for_stripe_customer(session: Session, customer_id: str | None) -> Account | None:
    if not customer_id:
        return None
    return session.query(Account).filter_by(stripe_customer_id=customer_id).one_or_none()


_LOCK_ACCOUNT = for_update(select(Account).where(Account.id == bindparam("account_id")))


def lock_account(session: Session, account_id: str) -> Account | None:
    """The account row locked for this transaction (SELECT ... FOR UPDATE): balance checks and
    the entries they allow serialise per account, so concurrent debits cannot overdraw it. A row
    this transaction has locked already is returned without a second round trip."""
    return lock_once(session, (Account, account_id), _LOCK_ACCOUNT, {"account_id": account_id})
