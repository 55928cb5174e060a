"""The seed's plans and packages, and lookups by Stripe price."""

from __future__ import annotations

from shared.billing import catalog


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
