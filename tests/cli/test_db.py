"""`billhook db upgrade` and `billhook seed`."""

from __future__ import annotations

from sqlalchemy import inspect, select

from shared.models import CreditPackage, IntegrationProvider, Plan
from tests.cli.conftest import BillhookCli


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path):
    cli = BillhookCli(tmp_path)

    first = cli("db", "upgrade")
    again = cli("db", "upgrade")

    assert "newest migration" in first.output and "newest migration" in again.output
    tables = set(inspect(cli.session_factory.kw["bind"]).get_table_names())
    assert {"accounts", "plans", "credit_ledger", "webhook_events", "integration_providers"} <= tables
    cli.close()


def test_seed_creates_the_plans_packages_and_a_stripe_webhook_secret(billhook):
    result = billhook("seed")

    assert "seeded 3 plans, 4 credit packages, providers: stripe" in result.output
    with billhook.session_factory() as session:
        plans = {p.id: (p.price_cents, p.included_credits) for p in session.scalars(select(Plan))}
        packages = {p.id: (p.credits, p.price_cents) for p in session.scalars(select(CreditPackage))}
        stripe = session.scalars(select(IntegrationProvider).filter_by(name="stripe")).one()
    assert {k: v[0] for k, v in plans.items()} == {"starter": 9900, "growth": 19900, "scale": 29900}
    assert packages == {
        "starter": (500, 999),
        "value": (2000, 2999),
        "pro": (5000, 5999),
        "enterprise": (15000, 14999),
    }
    assert stripe.webhook_secrets[0].startswith("whsec_dev_")
    assert stripe.webhook_secrets[0] not in result.output


def test_seed_is_idempotent_and_keeps_edited_rows(billhook):
    billhook("seed")
    with billhook.session_factory.begin() as session:
        session.get(Plan, "growth").price_cents = 17900

    again = billhook("seed")

    assert "seeded 0 plans, 0 credit packages" in again.output
    assert "providers" not in again.output
    with billhook.session_factory() as session:
        assert session.get(Plan, "growth").price_cents == 17900
        assert len(session.scalars(select(Plan)).all()) == 3
