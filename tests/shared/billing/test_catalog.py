"""The seed's plans and packages, and lookups by Stripe price."""

from __future__ import annotations

from shared.billing import catalog
from shared.models import Plan
from tests.statements import Statements


def test_the_seed_has_three_monthly_plans_and_four_credit_packages_in_order(session):
    plans = catalog.active_plans(session)
    packages = catalog.active_packages(session)

    assert [(p.id, p.price_cents, p.interval, p.currency) for p in plans] == [
        ("starter", 9900, "month", "usd"),
        ("growth", 19900, "month", "usd"),
        ("scale", 29900, "month", "usd"),
    ]
    assert [(p.id, p.credits, p.price_cents) for p in packages] == [
        ("starter", 500, 999),
        ("value", 2_000, 2999),
        ("pro", 5_000, 5999),
        ("enterprise", 15_000, 14999),
    ]


def test_seeding_again_adds_nothing_and_keeps_edits(session):
    catalog.active_plans(session)[0].name = "Starter (legacy)"

    assert catalog.seed_catalog(session) == (0, 0)
    assert catalog.active_plans(session)[0].name == "Starter (legacy)"


def test_plans_and_packages_are_found_by_stripe_price(session):
    assert catalog.plan_by_stripe_price(session, "price_billhook_scale_monthly").id == "scale"
    assert catalog.package_by_stripe_price(session, "price_billhook_credits_2000").id == "value"
    assert catalog.plan_by_stripe_price(session, "price_unknown") is None
    assert catalog.plan_by_stripe_price(session, None) is None


def test_an_inactive_plan_is_not_offered(session):
    catalog.active_plans(session)[0].active = False
    session.flush()

    assert [p.id for p in catalog.active_plans(session)] == ["growth", "scale"]


def test_a_transaction_reads_a_price_once_and_the_next_reads_it_again(seeded):
    with seeded.begin() as session, Statements(seeded) as seen:
        first = catalog.plan_by_stripe_price(session, "price_billhook_scale_monthly")
        again = catalog.plan_by_stripe_price(session, "price_billhook_scale_monthly")
    assert first is again
    assert len(seen.reading("plans")) == 1  # a batch's events share the lookup

    with seeded.begin() as session:  # an operator moves the plan to another Price meanwhile
        catalog.set_stripe_price(session, session.get(Plan, "scale"), "price_scale_2027")

    with seeded.begin() as session:
        assert catalog.plan_by_stripe_price(session, "price_scale_2027").id == "scale"
        assert catalog.plan_by_stripe_price(session, "price_billhook_scale_monthly").id == "scale"  # its former Price


def test_a_price_set_in_the_transaction_is_found_by_its_next_lookup(session):
    assert catalog.plan_by_stripe_price(session, "price_growth_2027") is None

    catalog.set_stripe_price(session, session.get(Plan, "growth"), "price_growth_2027")

    assert catalog.plan_by_stripe_price(session, "price_growth_2027").id == "growth"
