"""`billhook dev trigger SCENARIO`: what Stripe (or PayPal) would send, signed and posted to web."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from cli import paypal_scenarios, scenarios, service
from cli.context import CliContext, pass_ctx
from shared import credentials
from shared.billing import catalog
from shared.billing.subscriptions import LIVE_STATUSES
from shared.models import Account, CreditPackage, Payment, Plan, Subscription
from shared.stripe.signing import stripe_signature_header

STRIPE_SCENARIOS = (
    "subscribe",
    "renew",
    "upgrade",
    "downgrade",
    "payment-failed",
    "cancel",
    "buy-credits",
    "async-payment",
    "refund",
)
PAYPAL_SCENARIOS = ("paypal-capture", "paypal-subscribe", "paypal-renew")


@click.command("trigger")
@click.argument("scenario", type=click.Choice(STRIPE_SCENARIOS + PAYPAL_SCENARIOS))
@click.option("--account", "account_id", default="acct_dev", show_default=True)
@click.option("--plan", "plan_id", help="subscribe/upgrade/downgrade: the plan (default: the first, next, previous).")
@click.option("--package", "package_id", help="buy-credits/async-payment: the package (default: the first).")
@click.option("--url", help="web's base URL.", default=service.default_base_url, show_default="http://127.0.0.1:$PORT")
@click.option("--secret", help="Signing secret; default: the stored Stripe webhook secret.")
@pass_ctx
def trigger(
    ctx: CliContext,
    scenario: str,
    account_id: str,
    plan_id: str | None,
    package_id: str | None,
    url: str,
    secret: str | None,
) -> None:
    """Send SCENARIO's events, in the current Stripe API shapes (or PayPal's), for ACCOUNT.

    The events follow on from what billhook already holds for the account (its subscription,
    plan, last payment), so `subscribe`, then `renew`, then `refund` tell one story. See the
    result with `billhook accounts show ACCOUNT`. The paypal-* scenarios are signed with billhook's
    development certificate, which web trusts only with BILLHOOK_DEV_MODE=1 and the PayPal
    provider's config {"verification": "development"}."""
    with ctx.session_factory() as session:
        if scenario in PAYPAL_SCENARIOS:
            path, deliveries = _paypal_deliveries(ctx, session, scenario, account_id, plan_id, package_id)
        else:
            path, deliveries = _stripe_deliveries(session, scenario, account_id, plan_id, package_id, secret)
    endpoint = f"{url.rstrip('/')}{path}"
    failed = False
    for evt_type, evt_id, body, headers in deliveries:
        response = service.post(endpoint, body, headers)
        failed = failed or response.status_code >= 300
        click.echo(f"{response.status_code}  {evt_type:<42} {evt_id}")
    if failed:
        raise SystemExit(1)
    click.echo(f"sent {len(deliveries)} event(s); see `billhook accounts show {account_id}`")


Delivery = tuple[str, str, bytes, dict[str, str]]  # type, event id, body, headers


def _stripe_deliveries(
    session: Session, scenario: str, account_id: str, plan_id: str | None, package_id: str | None, secret: str | None
) -> tuple[str, list[Delivery]]:
    acct = account_state(session, account_id)
    build = _builder(session, scenario, acct, plan_id, package_id)
    secret = secret or service.stripe_webhook_secret(session)
    try:
        events = build()
    except scenarios.ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    deliveries = []
    for evt in events:
        body = json.dumps(evt).encode()
        headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature_header(body, secret)}
        deliveries.append((evt["type"], evt["id"], body, headers))
    return "/webhooks/stripe", deliveries


def _paypal_deliveries(
    ctx: CliContext, session: Session, scenario: str, account_id: str, plan_id: str | None, package_id: str | None
) -> tuple[str, list[Delivery]]:
    provider = credentials.get_provider(session, "paypal")
    if provider is None or not provider.webhook_id or (provider.config or {}).get("verification") != "development":
        raise click.ClickException(
            "PayPal is not in development verification: run `billhook providers set paypal --webhook-id WH-DEV"
            """ --config '{"verification": "development"}'` and start web with BILLHOOK_DEV_MODE=1"""
        )
    account = session.get(Account, account_id)
    email = account.email if account and account.email else f"{account_id}@example.com"
    if scenario == "paypal-capture":
        package = _pick_package(session, package_id)
        events = paypal_scenarios.capture(account_id, email, package.item_id, package.amount, package.currency)
    elif scenario == "paypal-subscribe":
        plan = _pick_paypal_plan(session, plan_id)
        period = timedelta(seconds=scenarios.PERIOD_SECONDS.get(plan.interval, scenarios.PERIOD_SECONDS["month"]))
        events = paypal_scenarios.subscribe(account_id, email, plan.id, plan.paypal_plan_id, plan.price_cents, period)
    else:
        sub = _live_subscription(session, account_id, "paypal")
        plan = session.get(Plan, sub.plan_id) if sub and sub.plan_id else None
        if sub is None or plan is None:
            raise click.ClickException(
                f"account {account_id} has no PayPal subscription: trigger paypal-subscribe first"
            )
        due = sub.current_period_end or datetime.now(UTC)
        events = paypal_scenarios.renew(sub.provider_subscription_id, plan.price_cents, due)
    deliveries = []
    for evt in events:
        body, headers = paypal_scenarios.signed(evt, webhook_id=provider.webhook_id, var_dir=ctx.settings.var_dir)
        deliveries.append((evt["event_type"], evt["id"], body, headers))
    return "/webhooks/paypal", deliveries


def _pick_paypal_plan(session: Session, plan_id: str | None) -> Plan:
    plans = [p for p in catalog.active_plans(session) if p.paypal_plan_id]
    chosen = next((p for p in plans if p.id == plan_id), None) if plan_id else next(iter(plans), None)
    if chosen is None:
        raise click.ClickException(f"no active plan {plan_id or ''!r} with a PayPal plan id (billhook catalog list)")
    return chosen


def _live_subscription(session: Session, account_id: str, provider: str) -> Subscription | None:
    return session.scalars(
        select(Subscription)
        .filter_by(account_id=account_id, provider=provider)
        .where(Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.updated_at.desc())
    ).first()


def account_state(session: Session, account_id: str) -> scenarios.Account:
    """The account as the scenarios need it, from billhook's store."""
    account = session.get(Account, account_id)
    acct = scenarios.Account(
        account_id=account_id,
        email=(account.email if account and account.email else f"{account_id}@example.com"),
        customer=(account.stripe_customer_id if account and account.stripe_customer_id else scenarios.unique("cus")),
    )
    sub = _live_subscription(session, account_id, "stripe")
    if sub is not None:
        acct.subscription_id = sub.provider_subscription_id
        plan = session.get(Plan, sub.plan_id) if sub.plan_id else None
        acct.plan = _price(plan) if plan else None
        acct.period_start = int(sub.current_period_start.timestamp()) if sub.current_period_start else None
        acct.period_end = int(sub.current_period_end.timestamp()) if sub.current_period_end else None
        acct.not_before = int(sub.last_event_at.timestamp()) if sub.last_event_at else 0
    payment = session.scalars(
        select(Payment)
        .filter_by(account_id=account_id, provider="stripe", status="succeeded")
        .where(Payment.provider_charge_ref.is_not(None))
        .order_by(Payment.id.desc())
    ).first()
    if payment is not None:
        acct.last_payment_intent = payment.provider_charge_ref
        acct.last_payment_amount = payment.amount_cents
    return acct


def _builder(
    session: Session, scenario: str, acct: scenarios.Account, plan_id: str | None, package_id: str | None
) -> Callable[[], list[dict]]:
    if scenario == "subscribe":
        plan = _pick_plan(session, plan_id, acct, step=0)
        return lambda: scenarios.subscribe(acct, plan)
    if scenario in ("upgrade", "downgrade"):
        plan = _pick_plan(session, plan_id, acct, step=1 if scenario == "upgrade" else -1)
        return lambda: scenarios.change_plan(acct, plan, prorate=scenario == "upgrade")
    if scenario in ("buy-credits", "async-payment"):
        package = _pick_package(session, package_id)
        return lambda: (scenarios.buy_credits if scenario == "buy-credits" else scenarios.async_payment)(acct, package)
    simple = {
        "renew": scenarios.renew,
        "payment-failed": scenarios.payment_failed,
        "cancel": scenarios.cancel,
        "refund": scenarios.refund,
    }
    return lambda: simple[scenario](acct)


def _pick_plan(session: Session, plan_id: str | None, acct: scenarios.Account, *, step: int) -> scenarios.Price:
    plans = catalog.active_plans(session)
    if plan_id:
        chosen = next((p for p in plans if p.id == plan_id), None)
        if chosen is None:
            raise click.ClickException(f"no active plan {plan_id!r} (billhook catalog list)")
        return _price(chosen)
    if not plans:
        raise click.ClickException("the catalog has no active plan: run `billhook seed`")
    if step == 0 or acct.plan is None:
        return _price(plans[0])
    ids = [p.id for p in plans]
    at = ids.index(acct.plan.item_id) if acct.plan.item_id in ids else 0
    target = at + step
    if not 0 <= target < len(plans):
        word = "upgrade" if step > 0 else "downgrade"
        raise click.ClickException(f"no plan to {word} to from {acct.plan.item_id!r}: pass --plan")
    return _price(plans[target])


def _pick_package(session: Session, package_id: str | None) -> scenarios.Price:
    packages = catalog.active_packages(session)
    chosen = next((p for p in packages if p.id == package_id), None) if package_id else next(iter(packages), None)
    if chosen is None:
        raise click.ClickException(f"no active package {package_id or ''!r} (billhook catalog list)")
    return _price(chosen)


def _price(item: Plan | CreditPackage) -> scenarios.Price:
    interval = item.interval if isinstance(item, Plan) else None
    price_id = item.stripe_price_id or f"price_dev_{catalog.lookup_key(item)}"
    return scenarios.Price(item.id, price_id, item.price_cents, item.currency, interval)
