"""Handlers take locks in one order (account, then subscription, then payment), so related events
for one account handled at the same moment on PostgreSQL never deadlock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from shared import processing
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.models import Account, CreditLedgerEntry
from tests.factories.inbox import store_event
from tests.integration import support

pytestmark = pytest.mark.postgres

PAIRS = 12


def _run_together(session_factory, event_pks: list[int]) -> list[BaseException]:
    """Process the events in threads released at the same instant; return what any raised."""
    barrier = threading.Barrier(len(event_pks))
    errors: list[BaseException] = []

    def run(event_pk: int) -> None:
        barrier.wait()
        try:
            processing.process_event(session_factory, event_pk, clock=lambda: datetime.now(UTC))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(pk,)) for pk in event_pks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_checkout_linking_a_customer_and_its_invoice_at_once_do_not_deadlock(pg_session_factory):
    created = int(time.time()) - 60
    pairs = []
    for i in range(PAIRS):
        account_id = f"acct_lock_{i}"
        # An account the main app created first: not yet linked to a Stripe customer.
        with pg_session_factory.begin() as session:
            ensure_account(session, account_id, email=f"before{i}@example.com")
        checkout, invoice, ids = support.subscription_start(account_id, created=created)
        invoice["data"]["object"]["customer_email"] = f"after{i}@example.com"  # the invoice updates the account too
        pairs.append(
            (
                account_id,
                ids,
                store_event(pg_session_factory, checkout),
                store_event(pg_session_factory, invoice),
            )
        )

    for _, _, checkout_pk, invoice_pk in pairs:
        errors = _run_together(pg_session_factory, [checkout_pk, invoice_pk])
        assert errors == [], [processing.describe(e) for e in errors]

    with pg_session_factory() as session:
        for account_id, ids, _, _ in pairs:
            account = session.get(Account, account_id)
            assert account.stripe_customer_id == ids["customer"]
            grants = session.scalar(
                select(func.count()).select_from(CreditLedgerEntry).filter_by(account_id=account_id)
            )
            assert grants == 1
            assert ledger.balance(session, account_id) == 12_000
