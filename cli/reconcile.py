"""`billhook reconcile stripe|paypal --since` and `billhook sync subscription ID`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from cli.context import CliContext, pass_ctx
from cli.events import parse_since
from shared.errors import BillhookError
from shared.paypal.reconcile import reconcile_paypal
from shared.stripe.reconcile import reconcile_stripe, sync_stripe_subscription


@click.group("reconcile")
def reconcile_group() -> None:
    """Fetch from a provider's API what its webhooks may have missed."""


@reconcile_group.command("stripe")
@click.option(
    "--since", default="3d", show_default=True, help="ISO date/time or an age (90m, 12h, 7d); Stripe keeps 30d."
)
@pass_ctx
def stripe(ctx: CliContext, since: str) -> None:
    """Store and queue every handled Stripe event since then that the inbox lacks."""
    now = datetime.now(UTC)
    start = parse_since(since, now)
    if start < now - timedelta(days=30):
        click.echo("note: Stripe's Events API only returns the last 30 days", err=True)
    _reconcile(ctx, "Stripe", reconcile_stripe, start, now)


@reconcile_group.command("paypal")
@click.option("--since", default="3d", show_default=True, help="ISO date/time or an age (90m, 12h, 7d).")
@pass_ctx
def paypal(ctx: CliContext, since: str) -> None:
    """Store and queue every PayPal webhook event since then that the inbox lacks."""
    now = datetime.now(UTC)
    _reconcile(ctx, "PayPal", reconcile_paypal, parse_since(since, now), now)


def _reconcile(ctx: CliContext, provider: str, reconcile, start: datetime, now: datetime) -> None:
    """One provider's reconciliation, the new events queued on the broker, and what it found."""
    from worker.celery_app import make_celery
    from worker.messages import enqueue_event

    celery = make_celery(ctx.settings)
    try:
        result = reconcile(
            ctx.session_factory, ctx.settings, since=start, now=now, enqueue=lambda pk: enqueue_event(celery, pk)
        )
    except BillhookError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"checked {result.seen} {provider} event(s) since {start:%Y-%m-%d %H:%M} UTC in {result.pages} page(s);"
        f" {len(result.inserted)} missing, now stored"
        + (f": {', '.join(map(str, result.inserted))}" if result.inserted else "")
    )
    if result.enqueue_failed:
        click.echo("the broker is unreachable; the sweeper will queue the stored events", err=True)


@click.group("sync")
def sync_group() -> None:
    """Refetch one object from its provider and fix drift."""


@sync_group.command("subscription")
@click.argument("subscription_id")
@pass_ctx
def subscription(ctx: CliContext, subscription_id: str) -> None:
    """Refetch a Stripe subscription and apply its state now (newer than any event before)."""
    try:
        result = sync_stripe_subscription(ctx.session_factory, ctx.settings, subscription_id, now=datetime.now(UTC))
    except BillhookError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "subscription": result.subscription_id,
                "changed": result.changed,
                "before": result.before,
                "after": result.after,
                "event": result.event_pk,
            },
            indent=2,
            default=str,
        )
    )


commands = [reconcile_group, sync_group]
