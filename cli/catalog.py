from __future__ import annotations

import json

import click
from sqlalchemy.orm import Session

from cli.context import CliContext, pass_ctx
from shared.billing import catalog, upgrades
from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError
from shared.models import CreditPackage, Plan
from shared.stripe import catalog as stripe_catalog
from shared.stripe.client import PROVIDER as STRIPE
from shared.stripe.client import StripeGateway

KIND = click.Choice(catalog.KINDS)


@click.group("catalog")
def catalog_group() -> None:
    """Plans and credit packages, and their Prices at Stripe (mapped by lookup key)."""


@catalog_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def list_items(ctx: CliContext, as_json: bool) -> None:
    """Every plan and package, active or not."""
    with ctx.session_factory() as session:
        rows = [catalog.describe(item) for item in catalog.all_items(session)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        every = f"/{row['interval']}" if row["kind"] == catalog.PLAN else " once"
        click.echo(
            f"{row['kind']:<7} {row['id']:<12} {row['name']:<16} {row['price_cents']:>7} {row['currency']}{every:<7}"
            f" {row['credits']:>7} credits  {'active' if row['active'] else 'inactive':<8}"
            f" stripe={row['stripe_price_id'] or '-'}"
            + (f" paypal={row['paypal_plan_id'] or '-'}" if row["kind"] == catalog.PLAN else "")
        )


@catalog_group.command("show")
@click.argument("kind", type=KIND)
@click.argument("item_id")
@pass_ctx
def show(ctx: CliContext, kind: str, item_id: str) -> None:
    """One plan or package, with its lookup key, features and policy."""
    with ctx.session_factory() as session:
        click.echo(json.dumps(catalog.describe(_get(session, kind, item_id)), indent=2))


@catalog_group.command("set")
@click.argument("kind", type=KIND)
@click.argument("item_id")
@click.option("--name")
@click.option("--price-cents", type=click.IntRange(min=0), help="In minor units; a plan's Stripe price is replaced.")
@click.option("--currency")
@click.option("--interval", type=click.Choice(["day", "week", "month", "year"]), help="Plans only.")
@click.option("--credits", type=click.IntRange(min=1), help="A plan's credits per period, or a package's credits.")
@click.option("--active/--inactive", default=None)
@click.option("--stripe-price-id", help="Map to this Stripe Price by hand ('' to clear).")
@click.option("--paypal-plan-id", help="Plans only ('' to clear).")
@click.option("--features", "features_json", help="Plans only: a JSON object, e.g. '{\"seats\": 5}'.")
@click.option("--trial-days", type=click.IntRange(min=0), help="Plans only.")
@click.option("--grace-days", type=click.IntRange(min=0), help="Plans only: days a past_due plan stays usable.")
@click.option(
    "--upgrade-credits",
    type=click.Choice(upgrades.POLICIES),
    help="Plans only: what an upgrade to it mid-period grants ('difference': its credits less the old plan's).",
)
@click.option(
    "--prorate-upgrades/--no-prorate-upgrades",
    default=None,
    help="Plans only: prorate upgrade credits by the time left in the period.",
)
@click.option("--sort-order", type=int)
@click.option("--local-only", is_flag=True, help="Change the price in billhook only, not at Stripe.")
@click.option("--live", is_flag=True, help="Allow creating a Price with a live Stripe key.")
@pass_ctx
def set_item(ctx: CliContext, kind: str, item_id: str, local_only: bool, live: bool, **fields) -> None:
    """Create or change a plan or package. A new price of an item sold at Stripe makes a new Price
    there (the lookup key moves to it); existing subscribers stay on the Price they bought."""
    changes = _changes(kind, fields)
    with ctx.session_factory.begin() as session:
        item = catalog.get_item(session, kind, item_id)
        if item is None:
            item = _new_item(session, kind, item_id, changes)
        price_cents = changes.pop("price_cents", None)
        stripe_price_id = changes.pop("stripe_price_id", None)
        for name, value in changes.items():
            setattr(item, name, value)
        if stripe_price_id is not None:
            catalog.set_stripe_price(session, item, stripe_price_id or None)
        if price_cents is not None and price_cents != item.price_cents:
            if item.stripe_price_id and not local_only:
                hint = "; or pass --local-only to change the price in billhook only"
                gateway = _gateway(ctx, session, live=live, hint=hint)
                line = _stripe(lambda: stripe_catalog.reprice(session, gateway, item, price_cents))
                click.echo(line.text())
            else:
                item.price_cents = price_cents
        session.flush()
        shown = catalog.describe(item)
    click.echo(json.dumps(shown, indent=2))


@catalog_group.command("sync")
@click.argument("provider", type=click.Choice([STRIPE]))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@pass_ctx
def sync(ctx: CliContext, provider: str, dry_run: bool) -> None:
    """Map plans and packages to the account's active Prices by lookup key
    (billhook_plan_<id>_monthly, billhook_package_<id>; `catalog list --json` shows each key)."""
    with ctx.session_factory.begin() as session:
        gateway = _gateway(ctx, session, live=True)  # reads the account, writes only billhook's store
        lines = _stripe(lambda: stripe_catalog.sync(session, gateway, dry_run=dry_run))
        _report(lines, dry_run)
        if dry_run:
            session.rollback()


@catalog_group.command("push")
@click.argument("provider", type=click.Choice([STRIPE]))
@click.option("--dry-run", is_flag=True, help="Report what would be created; create nothing.")
@click.option("--live", is_flag=True, help="Allow a live Stripe key (the default refuses one).")
@pass_ctx
def push(ctx: CliContext, provider: str, dry_run: bool, live: bool) -> None:
    """Create the Products and Prices the Stripe account lacks, with billhook's lookup keys, and
    map them. Safe to run again: it finds what it made."""
    with ctx.session_factory.begin() as session:
        gateway = _gateway(ctx, session, live=live)
        lines = _stripe(lambda: stripe_catalog.push(session, gateway, dry_run=dry_run))
        _report(lines, dry_run)
        if dry_run:
            session.rollback()


def _report(lines: list[stripe_catalog.Line], dry_run: bool) -> None:
    for line in lines:
        click.echo(line.text(dry_run))
    counts = {action: sum(1 for line in lines if line.action == action) for action in _ACTIONS}
    summary = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
    click.echo(f"{'dry run, nothing changed: ' if dry_run else ''}{summary or 'an empty catalog'}")


_ACTIONS = (stripe_catalog.FOUND, stripe_catalog.CHANGED, stripe_catalog.CREATED, stripe_catalog.UNMAPPED)
_PLAN_ONLY = (
    "interval",
    "paypal_plan_id",
    "features",
    "trial_days",
    "past_due_grace_days",
    "upgrade_credits",
    "prorate_upgrades",
)


def _changes(kind: str, fields: dict) -> dict:
    """The model fields the options set; '' clears a provider id."""
    given = {
        "name": fields["name"],
        "price_cents": fields["price_cents"],
        "currency": fields["currency"].lower() if fields["currency"] else None,
        "active": fields["active"],
        "stripe_price_id": fields["stripe_price_id"],
        "sort_order": fields["sort_order"],
        "interval": fields["interval"],
        "paypal_plan_id": fields["paypal_plan_id"],
        "features": _features(fields["features_json"]),
        "trial_days": fields["trial_days"],
        "past_due_grace_days": fields["grace_days"],
        "upgrade_credits": fields["upgrade_credits"],
        "prorate_upgrades": fields["prorate_upgrades"],
        "included_credits" if kind == catalog.PLAN else "credits": fields["credits"],
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if changes.get("paypal_plan_id") == "":
        changes["paypal_plan_id"] = None
    wrong = [name for name in _PLAN_ONLY if name in changes] if kind == catalog.PACKAGE else []
    if wrong:
        raise click.UsageError(f"a package has no {', '.join(name.replace('_', '-') for name in wrong)}")
    return changes


def _features(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        features = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--features") from exc
    if not isinstance(features, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--features")
    return features


def _new_item(session: Session, kind: str, item_id: str, changes: dict) -> Plan | CreditPackage:
    credits = "included_credits" if kind == catalog.PLAN else "credits"
    missing = [name for name in ("name", "price_cents", credits) if name not in changes]
    if missing:
        flags = ", ".join("--" + ("credits" if m == credits else m.replace("_", "-")) for m in missing)
        raise click.ClickException(f"no {kind} {item_id!r}: to create it, give {flags}")
    fields = {k: v for k, v in changes.items() if k != "stripe_price_id"}
    item = Plan(id=item_id, **fields) if kind == catalog.PLAN else CreditPackage(id=item_id, **fields)
    session.add(item)
    session.flush()
    return item


def _get(session: Session, kind: str, item_id: str) -> Plan | CreditPackage:
    item = catalog.get_item(session, kind, item_id)
    if item is None:
        raise click.ClickException(f"no {kind} {item_id!r} (billhook catalog list)")
    return item


def _gateway(ctx: CliContext, session: Session, *, live: bool, hint: str = "") -> StripeGateway:
    provider = active_provider(session, STRIPE)
    if provider is not None and stripe_catalog.is_live_key(provider.api_key) and not live:
        raise click.ClickException("the stored Stripe key is a live key: pass --live to change the live account")
    try:
        return StripeGateway.from_provider(provider, ctx.settings)
    except NotConfigured as exc:
        raise click.ClickException(f"{exc}{hint}") from exc


def _stripe(call):
    try:
        return call()
    except ProviderError as exc:
        raise click.ClickException(str(exc)) from exc


commands = [catalog_group]
