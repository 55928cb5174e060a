"""Invoice and credit-note numbers: gapless per year and series, a rollback gives the number back,
a duplicate takes none; refunds, lost disputes and rejections credit their invoice once each, and
never for more than it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import credentials
from shared.billing import catalog, invoices, payments, refunds
from shared.billing.accounts import ensure_account, lock_account
from shared.db import make_engine, make_sessionmaker
from shared.models import Base, CreditNote, Invoice
from shared.outcome import Outcome
from tests.shared.billing.test_manual_payments import ACCOUNT as MANUAL_ACCOUNT
from tests.shared.billing.test_manual_payments import decide, request
from tests.shared.billing.test_payments import record
from tests.shared.stripe.handlers.support import StripeSubscription, run
from tests.shared.stripe.handlers.test_disputes import bought_value_package, dispute_events
from tests.statements import Statements


@pytest.fixture
def t0(now) -> int:
    return int(now.timestamp())


def pay(session, ref: str, at: datetime, account: str = "acct_inv") -> Invoice:
    ensure_account(session, account)
    payment, _ = payments.record_payment(session, Outcome(), record(account, ref), at=at)
    return payments.invoice_for_payment(session, payment.id)


def notes(factory) -> list[tuple[str, str, int]]:
    with factory() as session:
        return [
            (n.number, n.reason, n.amount_cents) for n in session.scalars(select(CreditNote).order_by(CreditNote.id))
        ]


def test_numbers_run_without_gaps_per_year(seeded, now):
    next_year = datetime(now.year + 1, 1, 2, tzinfo=UTC)
    with seeded.begin() as session:
        numbers = [pay(session, f"cs_{i}", now).number for i in range(3)] + [pay(session, "cs_ny", next_year).number]
    assert numbers == [f"{now.year}-000001", f"{now.year}-000002", f"{now.year}-000003", f"{now.year + 1}-000001"]


def test_invoices_numbered_at_the_commit_take_their_numbers_in_order_in_one_statement(seeded, now):
    next_year = datetime(now.year + 1, 1, 2, tzinfo=UTC)
    with seeded.begin() as session:
        pay(session, "cs_before", now)
    with Statements(seeded) as statements, seeded.begin() as session:
        invoices.number_at_commit(session)
        issued = [pay(session, f"cs_{i}", now) for i in range(3)] + [pay(session, "cs_ny", next_year)]
        assert [i.number for i in issued] == [None] * 4  # until the commit
        assert statements.starting("insert into invoice_counters") == []

    assert len(statements.starting("insert into invoice_counters")) == 2  # one a year
    assert [i.number for i in issued] == [
        f"{now.year}-000002",
        f"{now.year}-000003",
        f"{now.year}-000004",
        f"{now.year + 1}-000001",
    ]
    with seeded() as session:
        assert [session.get(Invoice, i.id).number for i in issued] == [i.number for i in issued]


def test_an_issued_invoice_is_paid_as_written_and_as_loaded(seeded, now):
    with seeded.begin() as session:
        issued = pay(session, "cs_paid", now)
        assert (issued.status, issued.notes) == ("paid", None)
    with seeded() as session:
        assert (session.get(Invoice, issued.id).status, session.get(Invoice, issued.id).notes) == ("paid", None)


def test_a_rolled_back_issue_gives_its_number_back(seeded, now):
    with seeded.begin() as session:
        pay(session, "cs_kept", now)
    session = seeded()
    with session.begin():
        assert pay(session, "cs_lost", now).number == f"{now.year}-000002"
        session.rollback()
    with seeded.begin() as session:
        assert pay(session, "cs_next", now).number == f"{now.year}-000002"


def test_a_credit_note_is_issued_once_per_key_and_a_duplicate_takes_no_number(seeded, now):
    with seeded.begin() as session:
        invoice = pay(session, "cs_1", now)
        first = invoices.issue_credit_note(
            session, invoice, reason=invoices.REFUND, amount_cents=500, idempotency_key="k1", at=now
        )
        again = invoices.issue_credit_note(
            session, invoice, reason=invoices.REFUND, amount_cents=500, idempotency_key="k1", at=now
        )
        second = invoices.issue_credit_note(
            session, invoice, reason=invoices.REFUND, amount_cents=99_999, idempotency_key="k2", at=now
        )
        nothing_left = invoices.issue_credit_note(
            session, invoice, reason=invoices.DISPUTE_LOST, amount_cents=2999, idempotency_key="k3", at=now
        )
    assert (first.number, again, second.number) == (f"CN-{now.year}-000001", None, f"CN-{now.year}-000002")
    assert second.amount_cents == 2499  # the notes never add up to more than the invoice (2999)
    assert nothing_left is None  # and a fully credited invoice takes no further note, nor number


def test_a_partial_then_full_refund_credits_each_share_once(seeded, now):
    with seeded.begin() as session:
        invoice = pay(session, "cs_1", now)
    for cumulative, key in ((1000, "re_1"), (1000, "re_1"), (2999, "re_2")):
        with seeded.begin() as session:
            account = lock_account(session, "acct_inv")
            payment = payments.find_payment(session, "stripe", "cs_1", lock=True)
            refunds.reverse_refunded_credits(
                session, Outcome(), account, payment, amount_refunded_cents=cumulative, idempotency_key=key, at=now
            )
    assert notes(seeded) == [(f"CN-{now.year}-000001", "refund", 1000), (f"CN-{now.year}-000002", "refund", 1999)]
    with seeded() as session:
        assert {n.invoice_id for n in session.scalars(select(CreditNote))} == {invoice.id}


def test_a_lost_dispute_credits_the_invoice_once_and_a_won_one_does_not(seeded, now, t0):
    lost_intent = bought_value_package(seeded, now, t0)
    created, closed = dispute_events(lost_intent, t0)
    for evt in (created, closed, closed, created):
        run(seeded, evt, now)
    assert notes(seeded) == [(f"CN-{now.year}-000001", "dispute_lost", 2999)]

    won_intent = bought_value_package(seeded, now, t0)
    for evt in dispute_events(won_intent, t0, outcome="won"):
        run(seeded, evt, now)
    assert len(notes(seeded)) == 1


def test_a_rejected_manual_payment_credits_its_voided_invoice_once(seeded, now):
    with seeded.begin() as session:
        credentials.set_provider(session, "manual", config={"instructions": "Contact us."})
        ensure_account(session, MANUAL_ACCOUNT)
    pid, _ = request(seeded, now)
    decide(seeded, now, pid, approve=False, reason="no transfer")
    decide(seeded, now + timedelta(minutes=1), pid, approve=False)
    assert notes(seeded) == [(f"CN-{now.year}-000001", "rejected", 999)]


def test_concurrent_issuers_on_postgresql_get_consecutive_numbers(pg_database, settings, now):
    engine = make_engine(settings.with_overrides(database_url=pg_database))
    Base.metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        catalog.seed_catalog(session)
        ensure_account(session, "acct_inv")
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def issue(i: int) -> None:
        try:
            start.wait(10)
            for j in range(5):  # a transaction each, so the threads' issues interleave
                with factory.begin() as session:
                    payments.record_payment(session, Outcome(), record("acct_inv", f"cs_{i}_{j}"), at=now)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert failures == []
        with factory() as session:
            numbers = sorted(session.scalars(select(Invoice.number)))
        assert numbers == [f"{now.year}-{n:06d}" for n in range(1, 41)]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url, kept",
    [("https://invoice.stripe.com/i/acct_x/in_1", True), ("javascript:alert(1)", False), (None, False)],
)
def test_a_paid_stripe_invoice_keeps_its_https_hosted_link_only(seeded, now, t0, url, kept):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal = sub.invoice("invoice.paid", reason="subscription_cycle", period=1, invoice_id="in_hosted")
    renewal["data"]["object"]["hosted_invoice_url"] = url

    run(seeded, renewal, now)

    with seeded() as session:
        invoice = session.scalars(select(Invoice).filter_by(provider_invoice_id="in_hosted")).one()
    assert invoice.hosted_url == (url if kept else None)
