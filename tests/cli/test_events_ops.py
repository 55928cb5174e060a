"""`billhook events list/show/replay/purge`: what ops do with the inbox, without SQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared import processing
from shared.billing import ledger
from shared.models import CreditLedgerEntry, WebhookEvent
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event

NOW = datetime.now(UTC)


def store(
    billhook, evt: dict, *, received_at: datetime = NOW, status: str | None = None, error: str | None = None
) -> int:
    state = {"status": status, "last_error": error} if status else {}
    return store_event(billhook.session_factory, evt, at=received_at, **state)


def run(billhook, pk: int) -> str:
    return processing.process_event(billhook.session_factory, pk, clock=lambda: datetime.now(UTC)).outcome


def checkout(account_id: str, **kwargs) -> dict:
    return se.event(
        "checkout.session.completed",
        se.checkout_session(account_id=account_id, mode="subscription", plan_id="growth", **kwargs),
    )


def listed_ids(output: str) -> list[int]:
    return [int(line.split()[0]) for line in output.splitlines() if line.strip()]


def status_of(billhook, pk: int) -> str:
    with billhook.session_factory() as session:
        return session.get(WebhookEvent, pk).status


def test_events_list_filters_by_status_type_account_and_since(billhook):
    billhook("seed")
    old = store(billhook, checkout("acct_a"), received_at=NOW - timedelta(days=3))
    failed = store(billhook, checkout("acct_b"), status="failed", error="PermanentError: boom")
    refund = store(
        billhook, se.event("charge.refunded", se.charge(payment_intent=se.unique("pi"), amount=10, amount_refunded=10))
    )
    done = store(billhook, checkout("acct_c"))
    assert run(billhook, done) == "done"

    assert listed_ids(billhook("events", "list").output) == [done, refund, failed, old]
    assert listed_ids(billhook("events", "list", "--status", "failed").output) == [failed]
    assert listed_ids(billhook("events", "list", "--type", "charge.refunded").output) == [refund]
    assert listed_ids(billhook("events", "list", "--account", "acct_c").output) == [done]
    assert listed_ids(billhook("events", "list", "--provider", "paypal").output) == []
    assert listed_ids(billhook("events", "list", "--since", "1d").output) == [done, refund, failed]
    since = (NOW - timedelta(days=4)).date().isoformat()
    assert listed_ids(billhook("events", "list", "--since", since, "--status", "received").output) == [refund, old]


def test_events_list_refuses_a_since_it_cannot_read(billhook):
    result = billhook("events", "list", "--since", "last tuesday", ok=False)
    assert result.exit_code == 2
    assert "neither an ISO date/time nor an age" in result.output


def test_events_show_lists_the_ledger_entries_payment_and_subscription_an_event_produced(billhook):
    billhook("seed")
    customer, subscription_id = se.unique("cus"), se.unique("sub")
    start = int(time.time())
    completed = store(
        billhook,
        se.event(
            "checkout.session.completed",
            se.checkout_session(
                account_id="acct_show",
                mode="subscription",
                plan_id="growth",
                customer=customer,
                subscription=subscription_id,
            ),
            created=start,
        ),
    )
    paid = store(
        billhook,
        se.event(
            "invoice.paid",
            se.invoice(
                subscription_id=subscription_id,
                customer=customer,
                price_id="price_billhook_growth_monthly",
                amount=19900,
                period_start=start,
                period_end=start + 30 * 86400,
                billing_reason="subscription_create",
                metadata={"account_id": "acct_show"},
                payment_intent=se.unique("pi"),
            ),
            created=start + 1,
        ),
    )
    assert run(billhook, completed) == "done" and run(billhook, paid) == "done"

    first = json.loads(billhook("events", "show", str(completed)).output)
    second = json.loads(billhook("events", "show", str(paid)).output)

    assert first["status"] == "succeeded" and first["attempts"] == 1 and first["last_error"] is None
    assert [(e["amount"], e["kind"]) for e in first["ledger_entries"]] == [(12_000, "subscription_grant")]
    assert first["subscription"]["id"] == subscription_id and first["subscription"]["status"] == "active"
    assert first["payload"]["id"] == first["event_id"]
    # The invoice found the period already granted: no entry of its own, but it made the payment
    # and is the newest state of the subscription.
    assert second["ledger_entries"] == []
    assert [(p["kind"], p["status"], p["amount_cents"]) for p in second["payments"]] == [
        ("subscription", "succeeded", 19900)
    ]
    assert second["subscription"]["applied"] is True and first["subscription"]["applied"] is False


def test_events_show_of_an_unknown_event_fails_saying_so(billhook):
    result = billhook("events", "show", "999", ok=False)
    assert result.exit_code == 1 and "no event 999" in result.output


def test_events_replay_since_requeues_only_recent_unfinished_events(billhook):
    billhook("seed")
    old_failed = store(billhook, checkout("acct_1"), received_at=NOW - timedelta(days=2), status="failed")
    new_failed = store(billhook, checkout("acct_2"), status="failed", error="TransientError: db")
    done = store(billhook, checkout("acct_3"))
    assert run(billhook, done) == "done"

    result = billhook("events", "replay", "--since", "6h")

    assert f"replayed 1 event(s): {new_failed}" in result.output
    assert "sweeper will queue" in result.output  # the test broker is down: the store holds the replay
    assert (status_of(billhook, old_failed), status_of(billhook, new_failed), status_of(billhook, done)) == (
        "failed",
        "received",
        "succeeded",
    )


def test_events_replay_force_reruns_a_done_event_and_its_credits_stay_granted_once(billhook):
    billhook("seed")
    pk = store(billhook, checkout("acct_once"))
    assert run(billhook, pk) == "done"

    assert "replayed 0 event(s)" in billhook("events", "replay", str(pk)).output  # done: left alone
    assert f"replayed 1 event(s): {pk}" in billhook("events", "replay", str(pk), "--force").output
    assert status_of(billhook, pk) == "received"
    assert run(billhook, pk) == "done"

    with billhook.session_factory() as session:
        assert ledger.balance(session, "acct_once") == 12_000
        assert session.get(WebhookEvent, pk).attempts == 2


def test_events_replay_needs_an_event_or_a_selection(billhook):
    result = billhook("events", "replay", ok=False)
    assert result.exit_code == 2 and "give one EVENT_PK, or --failed and/or --since" in result.output


def test_events_purge_deletes_old_done_events_keeps_failed_and_recent_and_keeps_the_ledger(billhook):
    billhook("seed")
    old_done = store(billhook, checkout("acct_old"), received_at=NOW - timedelta(days=40))
    assert run(billhook, old_done) == "done"
    old_failed = store(billhook, checkout("acct_f"), received_at=NOW - timedelta(days=40), status="failed")
    recent_done = store(billhook, checkout("acct_new"), received_at=NOW - timedelta(days=2))
    assert run(billhook, recent_done) == "done"

    dry = billhook("events", "purge", "--older-than", "30", "--dry-run").output
    assert "would purge 1 done event(s)" in dry and "1 ledger entr(y/ies) unlinked" in dry
    assert status_of(billhook, old_done) == "succeeded"

    assert "purged 1 done event(s)" in billhook("events", "purge", "--older-than", "30").output

    with billhook.session_factory() as session:
        remaining = set(session.scalars(select(WebhookEvent.id)))
        entry = session.scalars(select(CreditLedgerEntry).filter_by(account_id="acct_old")).one()
        assert ledger.balance(session, "acct_old") == 12_000
    assert remaining == {old_failed, recent_done}
    assert entry.source_event_id is None


def test_events_purge_refuses_a_window_shorter_than_provider_redelivery(billhook):
    result = billhook("events", "purge", "--older-than", "2", ok=False)
    assert result.exit_code == 2 and "--older-than" in result.output
