"""`billhook payments list|approve|reject` and `billhook credits adjust`, and a dispute in
`billhook accounts show`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from shared import credentials, inbox, processing
from shared.billing import catalog, ledger, manual_payments
from shared.billing.accounts import ensure_account
from shared.models import CreditLedgerEntry, ManualPayment, OutgoingDelivery
from shared.outcome import Outcome
from tests.factories import stripe_events as se

ACCOUNT = "acct_cli"


def requested(billhook, *, package_id: str = "starter") -> str:
    now = datetime.now(UTC)
    with billhook.session_factory.begin() as session:
        catalog.seed_catalog(session)
        credentials.set_provider(session, "manual", config={"instructions": "IBAN ..."})
        ensure_account(session, ACCOUNT, email="ada@example.com")
        done = manual_payments.request_manual_payment(
            session,
            Outcome(),
            account_id=ACCOUNT,
            plan_id=None,
            package_id=package_id,
            method="cheque",
            reference="CHQ-12",
            request_key=f"{ACCOUNT}:{package_id}",
            requested_by="test",
            at=now,
        )
        return done.payment.provider_payment_id


def balance(billhook) -> int:
    with billhook.session_factory() as session:
        return ledger.balance(session, ACCOUNT)


def test_payments_list_shows_pending_and_approve_grants_once(billhook):
    pid = requested(billhook)
    listed = json.loads(billhook("payments", "list", "--json").output)
    assert [(r["id"], r["method"], r["reference"]) for r in listed] == [(pid, "cheque", "CHQ-12")]

    result = billhook("payments", "approve", pid, "--by", "eve")
    again = billhook("payments", "reject", pid, ok=False)

    assert f"manual payment {pid} approved" in result.output
    assert again.exit_code != 0 and "already decided: succeeded by eve" in again.output
    assert balance(billhook) == 500
    assert "no pending manual payments" in billhook("payments", "list").output


def test_payments_reject_records_the_reason_and_grants_nothing(billhook):
    pid = requested(billhook)

    billhook("payments", "reject", pid, "--reason", "cheque bounced")

    with billhook.session_factory() as session:
        manual = session.scalars(select(ManualPayment)).one()
    assert (manual.decision_reason, manual.decided_by.startswith("cli:")) == ("cheque bounced", True)
    assert balance(billhook) == 0


def test_unknown_payment_is_an_error(billhook):
    result = billhook("payments", "approve", "mp_nope", ok=False)
    assert result.exit_code != 0 and "no manual payment" in result.output


def test_credits_adjust_is_signed_once_per_key(billhook):
    billhook("accounts", "create", "--id", ACCOUNT, "--email", "ada@example.com")

    billhook("credits", "adjust", ACCOUNT, "300", "--reason", "goodwill", "--key", "k1")
    replay = billhook("credits", "adjust", ACCOUNT, "300", "--reason", "goodwill", "--key", "k1")
    billhook("credits", "adjust", ACCOUNT, "-500", "--reason", "clawback", "--by", "ops:eve")

    assert "already adjusted" in replay.output
    assert balance(billhook) == -200
    with billhook.session_factory() as session:
        entries = list(session.scalars(select(CreditLedgerEntry).order_by(CreditLedgerEntry.id)))
    assert [(e.amount, e.description, e.actor) for e in entries][1:] == [(-500, "clawback", "ops:eve")]
    assert entries[0].actor.startswith("cli:")


def test_credits_adjust_refuses_an_unknown_account_and_a_zero(billhook):
    assert billhook("credits", "adjust", "acct_nobody", "5", "--reason", "x", ok=False).exit_code != 0
    billhook("accounts", "create", "--id", ACCOUNT, "--email", "ada@example.com")
    assert billhook("credits", "adjust", ACCOUNT, "0", "--reason", "x", ok=False).exit_code != 0


def test_accounts_show_lists_the_accounts_disputes(billhook):
    now = datetime.now(UTC)
    intent = se.unique("pi")
    checkout = se.event(
        "checkout.session.completed",
        se.checkout_session(
            account_id=ACCOUNT, mode="payment", package_id="value", amount_total=2999, payment_intent=intent
        ),
    )
    dispute = se.event("charge.dispute.created", se.dispute(payment_intent=intent, amount=2999))
    with billhook.session_factory.begin() as session:
        catalog.seed_catalog(session)
    for evt in (checkout, dispute):
        with billhook.session_factory.begin() as session:
            pk = inbox.record_event(
                session,
                provider="stripe",
                event_id=evt["id"],
                type=evt["type"],
                payload=evt,
                event_created_at=now,
                handled=True,
                at=now,
            ).id
        assert processing.process_event(billhook.session_factory, pk, clock=lambda: now).outcome == "done"

    shown = billhook("accounts", "show", ACCOUNT)

    assert "dispute" in shown.output and ": open (needs_response)" in shown.output
    assert "credits taken back 2000" in shown.output
    assert json.loads(billhook("accounts", "show", ACCOUNT, "--json").output)["disputes"][0]["state"] == "open"


def outgoing_deliveries(billhook) -> list[int]:
    with billhook.session_factory() as session:
        return list(session.scalars(select(OutgoingDelivery.id).order_by(OutgoingDelivery.id)))


def test_credits_adjust_hands_its_deliveries_to_the_broker_after_commit(billhook, broker):
    billhook("accounts", "create", "--id", ACCOUNT, "--email", "ada@example.com")
    billhook("endpoints", "add", "http://127.0.0.1:9/hook", "--allow-private")

    billhook("credits", "adjust", ACCOUNT, "300", "--reason", "goodwill", "--key", "k1")
    billhook("credits", "adjust", ACCOUNT, "300", "--reason", "goodwill", "--key", "k1")  # a replay: nothing new

    delivered = outgoing_deliveries(billhook)
    assert len(delivered) == 1  # credits.granted
    assert broker.queued_task_args(f"{broker.queue}.outgoing") == [("billhook.deliver_outgoing", delivered)]


def test_payments_approve_hands_its_emails_and_deliveries_to_the_broker(billhook, broker):
    pid = requested(billhook)
    billhook("endpoints", "add", "http://127.0.0.1:9/hook", "--allow-private")

    billhook("payments", "approve", pid)

    delivered = outgoing_deliveries(billhook)
    assert len(delivered) == 2  # manual_payment.approved, credits.granted
    assert broker.queued_task_args(f"{broker.queue}.outgoing") == [
        ("billhook.deliver_outgoing", [d]) for d in delivered
    ]
    assert [task for task, _ in broker.queued_task_args()] == ["billhook.send_email"]


def test_with_the_broker_down_the_adjustment_is_kept_for_the_sweep(billhook):
    billhook("accounts", "create", "--id", ACCOUNT, "--email", "ada@example.com")
    billhook("endpoints", "add", "http://127.0.0.1:9/hook", "--allow-private")

    result = billhook("credits", "adjust", ACCOUNT, "300", "--reason", "goodwill")

    assert "the sweeps will send" in result.output
    assert balance(billhook) == 300 and len(outgoing_deliveries(billhook)) == 1
