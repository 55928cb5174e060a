"""The account's billing state in an outgoing event is read once per account and transaction,
just before the commit: every event of one provider event carries the state that transaction
commits, at the cost of one query however many events it tells."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.billing import ledger
from shared.models import Account
from shared.outcome import Outcome
from shared.outgoing import events as outgoing
from tests import statements
from tests.shared.outgoing.test_events import outgoing_events, types
from tests.shared.stripe.handlers.support import ACCOUNT, StripeSubscription, run


class Statements(statements.Statements):
    def snapshots(self) -> int:
        return sum("plans.features" in s and "credit_ledger" in s for s in self.seen)


def test_three_events_of_one_invoice_cost_one_snapshot_and_carry_its_committed_state(seeded, now):
    sub = StripeSubscription(int(now.timestamp()))
    run(seeded, sub.checkout_completed(), now)
    with Statements(seeded) as statements:
        run(seeded, sub.invoice(reason="subscription_cycle", period=1), now)  # a renewal: payment + credits

    renewal = outgoing_events(seeded)[-2:]
    assert [e.type for e in renewal] == ["payment.succeeded", "credits.granted"]
    assert statements.snapshots() == 1
    with seeded() as session:
        balance = ledger.balance(session, ACCOUNT)
        account = session.get(Account, ACCOUNT)
        assert (account.outgoing_sequence, account.billing_changed_at) == (renewal[-1].sequence, now)
    # the payment's event was written before the grant, and still carries the balance after it
    assert [e.body["data"]["billing"]["balance"] for e in renewal] == [balance, balance]


def test_each_account_of_a_transaction_gets_its_own_snapshot(seeded, now):
    sub = StripeSubscription(int(now.timestamp()))
    run(seeded, sub.checkout_completed(), now)
    from shared.billing.accounts import ensure_account

    with seeded.begin() as session:
        ensure_account(session, "acct_other")
    with Statements(seeded) as statements, seeded.begin() as session:
        for account_id, credits in ((ACCOUNT, 5), ("acct_other", 7), (ACCOUNT, 11)):
            ledger.grant_credits(
                session,
                Outcome(),
                account_id=account_id,
                credits=credits,
                kind=ledger.GRANT_PURCHASE,
                description="top-up",
                idempotency_key=f"top-up:{account_id}:{credits}",
                at=now,
            )

    assert statements.snapshots() == 2
    other = outgoing_events(seeded, "acct_other")
    assert [(e.sequence, e.body["data"]["billing"]["balance"]) for e in other] == [(1, 7)]
    mine = outgoing_events(seeded)[-2:]
    assert [e.body["data"]["billing"]["balance"] for e in mine] == [mine[-1].body["data"]["billing"]["balance"]] * 2


def test_a_rolled_back_transaction_leaves_no_event_and_no_sequence_number(seeded, now):
    run(seeded, StripeSubscription(int(now.timestamp())).checkout_completed(), now)
    told = types(seeded)
    with pytest.raises(RuntimeError), seeded.begin() as session:
        ledger.debit_credits(
            session, Outcome(), account_id=ACCOUNT, amount=5, description="usage", idempotency_key="u1", at=now
        )
        raise RuntimeError("the handler failed after the debit")
    with seeded.begin() as session:  # the same key again in a transaction of its own, twice
        for _ in range(2):
            ledger.debit_credits(
                session, Outcome(), account_id=ACCOUNT, amount=5, description="usage", idempotency_key="u1", at=now
            )

    events = outgoing_events(seeded)
    assert types(seeded) == [*told, "credits.debited"]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert "billing" in events[-1].body["data"]


def test_an_event_key_taken_in_the_same_transaction_writes_nothing_twice(seeded, now):
    run(seeded, StripeSubscription(int(now.timestamp())).checkout_completed(), now)
    before = len(outgoing_events(seeded))
    with seeded.begin() as session:
        told = [
            outgoing.emit(session, Outcome(), account_id=ACCOUNT, type="credits.low", key="k", data={}, at=now)
            for _ in range(2)
        ]

    assert told == [True, False]
    assert len(outgoing_events(seeded)) == before + 1
    with seeded() as session:
        assert session.scalar(select(Account.outgoing_sequence).filter_by(id=ACCOUNT)) == before + 1
