"""The account's billing state in an outgoing event is read once per transaction, just before the
commit: every event of one provider event (or of a worker's batch of them) carries the state that
transaction commits, at the cost of one query however many events and accounts it tells."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.billing import ledger
from shared.models import Account, OutgoingDelivery
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


def test_each_account_of_a_transaction_gets_its_own_snapshot_from_one_query(seeded, now):
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

    assert statements.snapshots() == 1
    assert len(statements.starting("update accounts")) == 1  # both accounts' sequences, one statement
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
    outcome = Outcome()
    with seeded.begin() as session:
        for _ in range(2):
            outgoing.emit(session, outcome, account_id=ACCOUNT, type="credits.low", key="k", data={}, at=now)

    assert len(outgoing_events(seeded)) == before + 1
    with seeded() as session:
        assert session.scalar(select(Account.outgoing_sequence).filter_by(id=ACCOUNT)) == before + 1


def test_a_transactions_events_and_their_deliveries_are_one_insert_each(seeded, now):
    from shared.outgoing import endpoints

    with seeded.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/a", allow_private=True, at=now)
        endpoints.add_endpoint(session, "http://127.0.0.1:9/b", allow_private=True, at=now)
    sub = StripeSubscription(int(now.timestamp()))
    run(seeded, sub.checkout_completed(), now)
    with Statements(seeded) as statements:
        result = run(seeded, sub.invoice(reason="subscription_cycle", period=1), now)  # payment + credits

    inserts = [s for s in statements.seen if s.lstrip().upper().startswith("INSERT INTO OUTGOING_")]
    assert [s.split()[2] for s in inserts] == ["outgoing_events", "outgoing_deliveries"]
    assert not [s for s in statements.seen if s.lstrip().upper().startswith("UPDATE OUTGOING_")]
    assert len(result.deliveries) == 4  # two events, two endpoints
    with seeded() as session:
        written = session.scalars(select(OutgoingDelivery.id).where(OutgoingDelivery.id.in_(result.deliveries)))
        assert sorted(written) == sorted(result.deliveries)


def test_a_key_committed_before_writes_nothing_and_leaves_no_gap(seeded, now):
    run(seeded, StripeSubscription(int(now.timestamp())).checkout_completed(), now)

    def emit(*keys: str) -> Outcome:
        outcome = Outcome()
        with seeded.begin() as session:
            for key in keys:
                outgoing.emit(session, outcome, account_id=ACCOUNT, type="credits.low", key=key, data={}, at=now)
        return outcome

    emit("low:1")
    before = outgoing_events(seeded)
    emit("low:1", "low:2", "low:1", "low:3")  # the committed key first, and again

    events = outgoing_events(seeded)
    assert [e.idempotency_key for e in events[len(before) :]] == ["low:2", "low:3"]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.body["sequence"] for e in events] == [e.sequence for e in events]
    with seeded() as session:
        assert session.scalar(select(Account.outgoing_sequence).filter_by(id=ACCOUNT)) == len(events)


def test_a_transaction_whose_every_key_was_taken_changes_nothing_on_the_account(seeded, now):
    run(seeded, StripeSubscription(int(now.timestamp())).checkout_completed(), now)
    with seeded.begin() as session:
        outgoing.emit(session, Outcome(), account_id=ACCOUNT, type="credits.low", key="k", data={}, at=now)
    with seeded() as session:
        account = session.get(Account, ACCOUNT)
        before = (account.outgoing_sequence, account.billing_changed_at)
    later = now + timedelta(hours=1)

    outcome = Outcome()
    with seeded.begin() as session:
        outgoing.emit(session, outcome, account_id=ACCOUNT, type="credits.low", key="k", data={}, at=later)

    assert outcome.deliveries == []
    with seeded() as session:
        account = session.get(Account, ACCOUNT)
        assert (account.outgoing_sequence, account.billing_changed_at) == before
