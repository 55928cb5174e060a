"""`billhook catalog list/show/set/sync/push`, against a local stand-in for Stripe's API."""

from __future__ import annotations

import json

import pytest

from shared.billing import catalog
from shared.models import Plan


@pytest.fixture
def cli(billhook):
    billhook("seed")
    return billhook


@pytest.fixture
def stripe_cli(cli, fake_stripe):
    """The CLI with a test-mode Stripe key, its client pointed at the stand-in."""
    cli.env["STRIPE_API_BASE"] = fake_stripe.url
    cli("providers", "set", "stripe", "--api-key", "sk_test_catalog")
    return cli


def shown(cli, kind: str, item_id: str) -> dict:
    return json.loads(cli("catalog", "show", kind, item_id).output)


def test_catalog_list_shows_plans_and_packages_with_prices_credits_and_provider_ids(cli):
    lines = cli("catalog", "list").output.splitlines()

    assert len(lines) == 7
    assert lines[0].split()[:5] == ["plan", "starter", "Starter", "9900", "usd/month"]
    assert "5000 credits" in lines[0] and "stripe=price_billhook_starter_monthly" in lines[0]
    assert "paypal=P-BILLHOOK-STARTER" in lines[0]
    assert lines[3].split()[:5] == ["package", "starter", "Starter", "999", "usd"]


def test_catalog_show_names_the_lookup_key_features_and_policy(cli):
    plan = shown(cli, "plan", "growth")

    assert plan["lookup_key"] == "billhook_plan_growth_monthly"
    assert (plan["features"], plan["trial_days"], plan["past_due_grace_days"]) == ({}, 0, 7)
    assert shown(cli, "package", "pro")["lookup_key"] == "billhook_package_pro"


def test_catalog_set_changes_a_plan_without_stripe_when_no_price_changes(cli):
    cli(
        "catalog", "set", "plan", "growth", "--name", "Growth+", "--credits", "15000",
        "--features", '{"seats": 5}', "--trial-days", "14", "--grace-days", "3", "--inactive",
    )  # fmt: skip

    plan = shown(cli, "plan", "growth")
    assert (plan["name"], plan["credits"], plan["features"], plan["active"]) == ("Growth+", 15000, {"seats": 5}, False)
    assert (plan["trial_days"], plan["past_due_grace_days"]) == (14, 3)


def policy(cli, plan_id: str) -> tuple[str, bool]:
    plan = shown(cli, "plan", plan_id)
    return plan["upgrade_credits"], plan["prorate_upgrades"]


def test_catalog_set_gives_a_plan_its_upgrade_credit_policy(cli):
    assert policy(cli, "scale") == ("none", False)

    cli("catalog", "set", "plan", "scale", "--upgrade-credits", "difference", "--prorate-upgrades")
    assert policy(cli, "scale") == ("difference", True)

    cli("catalog", "set", "plan", "scale", "--no-prorate-upgrades")
    assert policy(cli, "scale") == ("difference", False)
    assert "Invalid value" in cli("catalog", "set", "plan", "scale", "--upgrade-credits", "all", ok=False).output
    refused = cli("catalog", "set", "package", "pro", "--upgrade-credits", "difference", ok=False)
    assert "a package has no upgrade-credits" in refused.output


def test_catalog_set_creates_a_package_given_its_name_price_and_credits(cli):
    refused = cli("catalog", "set", "package", "huge", "--name", "Huge", ok=False)
    assert refused.exit_code == 1 and "--price-cents" in refused.output and "--credits" in refused.output

    cli("catalog", "set", "package", "huge", "--name", "Huge", "--price-cents", "29999", "--credits", "40000")

    assert shown(cli, "package", "huge")["credits"] == 40000


def test_catalog_set_refuses_plan_only_fields_on_a_package_and_bad_features(cli):
    refused = cli("catalog", "set", "package", "pro", "--trial-days", "3", ok=False)
    assert "a package has no trial-days" in refused.output
    assert "must be a JSON object" in cli("catalog", "set", "plan", "scale", "--features", "[1]", ok=False).output


def test_catalog_set_price_without_stripe_configured_says_how_to_change_it_locally(cli):
    refused = cli("catalog", "set", "plan", "starter", "--price-cents", "12900", ok=False)
    assert refused.exit_code == 1 and "--local-only" in refused.output

    cli("catalog", "set", "plan", "starter", "--price-cents", "12900", "--local-only")

    assert shown(cli, "plan", "starter")["price_cents"] == 12900


def test_sync_maps_by_lookup_key_and_reports_what_it_could_not_map(stripe_cli, fake_stripe):
    starter = fake_stripe.add_price(lookup_key="billhook_plan_starter_monthly", unit_amount=9900)
    growth = fake_stripe.add_price(lookup_key="billhook_plan_growth_monthly", unit_amount=25000)  # not the catalog's
    pro = fake_stripe.add_price(lookup_key="billhook_package_pro", unit_amount=5999, interval=None)

    output = stripe_cli("catalog", "sync", "stripe").output

    assert f"changed      plan    starter      billhook_plan_starter_monthly -> {starter['id']}" in output
    assert f"changed      package pro          billhook_package_pro -> {pro['id']}" in output
    assert "unmapped     plan    growth" in output and "25000 usd/month, the catalog says 19900 usd/month" in output
    assert "unmapped     plan    scale        billhook_plan_scale_monthly (no active Price" in output
    assert output.splitlines()[-1] == "2 changed, 5 unmapped"
    assert shown(stripe_cli, "plan", "starter")["stripe_price_id"] == starter["id"]
    assert shown(stripe_cli, "plan", "growth")["stripe_price_id"] == "price_billhook_growth_monthly"
    assert growth["id"] not in json.dumps(shown(stripe_cli, "plan", "growth"))

    again = stripe_cli("catalog", "sync", "stripe").output
    assert f"found        plan    starter      billhook_plan_starter_monthly -> {starter['id']}" in again


def test_sync_dry_run_reports_and_changes_nothing(stripe_cli, fake_stripe):
    price = fake_stripe.add_price(lookup_key="billhook_plan_scale_monthly", unit_amount=29900)

    output = stripe_cli("catalog", "sync", "stripe", "--dry-run").output

    assert f"would change plan    scale        billhook_plan_scale_monthly -> {price['id']}" in output
    assert output.splitlines()[-1] == "dry run, nothing changed: 1 changed, 6 unmapped"
    assert shown(stripe_cli, "plan", "scale")["stripe_price_id"] == "price_billhook_scale_monthly"


def test_push_creates_every_product_and_price_once_and_maps_them(stripe_cli, fake_stripe):
    first = stripe_cli("catalog", "push", "stripe").output

    assert first.splitlines()[-1] == "7 created"
    assert len(fake_stripe.prices) == 7 and len(fake_stripe.products) == 7
    starter = fake_stripe.price_with_key("billhook_plan_starter_monthly")
    assert (starter["unit_amount"], starter["recurring"]["interval"]) == (9900, "month")
    assert fake_stripe.price_with_key("billhook_package_enterprise")["recurring"] is None
    assert shown(stripe_cli, "plan", "starter")["stripe_price_id"] == starter["id"]

    second = stripe_cli("catalog", "push", "stripe").output

    assert second.splitlines()[-1] == "7 found"
    assert len(fake_stripe.prices) == 7 and len(fake_stripe.products) == 7


def test_push_dry_run_creates_nothing(stripe_cli, fake_stripe):
    output = stripe_cli("catalog", "push", "stripe", "--dry-run").output

    assert output.splitlines()[-1] == "dry run, nothing changed: 7 created"
    assert "would create plan    starter" in output
    assert fake_stripe.prices == {} and fake_stripe.calls("POST") == []


@pytest.mark.parametrize("key", ["sk_live_abc123", "rk_live_abc123"])
def test_push_refuses_a_live_key_without_live(stripe_cli, fake_stripe, key):
    stripe_cli("providers", "set", "stripe", "--api-key", key)

    refused = stripe_cli("catalog", "push", "stripe", ok=False)

    assert refused.exit_code == 1 and "live key: pass --live" in refused.output
    assert fake_stripe.requests == []
    assert stripe_cli("catalog", "push", "stripe", "--live").output.splitlines()[-1] == "7 created"


def test_a_new_plan_price_is_a_new_price_and_subscribers_keep_resolving_to_the_plan(stripe_cli, fake_stripe):
    stripe_cli("catalog", "push", "stripe")
    before = fake_stripe.price_with_key("billhook_plan_growth_monthly")
    fake_stripe.add_subscription(subscription_id="sub_old", customer="cus_old", price_id=before["id"])

    output = stripe_cli("catalog", "set", "plan", "growth", "--price-cents", "24900").output

    after = fake_stripe.price_with_key("billhook_plan_growth_monthly")
    assert after["id"] != before["id"] and f"supersedes {before['id']}" in output
    assert (after["unit_amount"], after["product"]) == (24900, before["product"])
    assert fake_stripe.calls("POST", "/v1/prices")[-1].form["transfer_lookup_key"] == "true"
    assert (before["unit_amount"], before["lookup_key"]) == (19900, None)  # the old Price is left as it was
    assert fake_stripe.calls("POST", "/v1/subscriptions") == []
    assert fake_stripe.subscriptions["sub_old"]["items"]["data"][0]["price"]["id"] == before["id"]
    plan = shown(stripe_cli, "plan", "growth")
    assert (plan["price_cents"], plan["stripe_price_id"]) == (24900, after["id"])
    assert before["id"] in plan["earlier_stripe_price_ids"]
    with stripe_cli.session_factory() as session:
        assert catalog.plan_by_stripe_price(session, before["id"]).id == "growth"  # renewals at the old Price
        assert catalog.plan_by_stripe_price(session, after["id"]).id == "growth"
        assert session.get(Plan, "growth").price_cents == 24900


def test_a_new_package_price_is_a_new_one_time_price_with_the_key(stripe_cli, fake_stripe):
    stripe_cli("catalog", "push", "stripe")
    before = fake_stripe.price_with_key("billhook_package_pro")

    stripe_cli("catalog", "set", "package", "pro", "--price-cents", "4999")

    after = fake_stripe.price_with_key("billhook_package_pro")
    assert (after["unit_amount"], after["recurring"], after["product"]) == (4999, None, before["product"])
    assert shown(stripe_cli, "package", "pro")["stripe_price_id"] == after["id"]
    assert stripe_cli("catalog", "sync", "stripe").output.splitlines()[-1] == "7 found"
