"""`billhook subscriptions cancel ID [--refund]`: end a subscription at its provider now."""

from __future__ import annotations

import click

from cli.context import CliContext, pass_ctx
from shared.errors import BillhookError, ProviderTimeout
from shared.stripe.cancellation import cancel_now


@click.group("subscriptions")
def subscriptions_group() -> None:
    """Subscriptions, by their provider's id."""


@subscriptions_group.command("cancel")
@click.argument("subscription_id")
@click.option("--refund", is_flag=True, help="Also refund its latest paid payment in full.")
@pass_ctx
def cancel(ctx: CliContext, subscription_id: str, refund: bool) -> None:
    """Cancel a Stripe subscription at Stripe now (a flagged duplicate, say). billhook's state
    changes when Stripe's webhooks arrive; running it again is safe."""
    try:
        done = cancel_now(ctx.session_factory, ctx.settings, subscription_id, refund=refund)
    except ProviderTimeout as exc:
        raise click.ClickException(
            f"{exc}; whether Stripe acted is unknown: run the command again (it is safe)"
        ) from exc
    except BillhookError as exc:
        raise click.ClickException(str(exc)) from exc
    if done.already_ended:
        click.echo(
            f"subscription {done.subscription_id} of {done.account_id} had already ended at Stripe ({done.status})"
        )
    else:
        click.echo(f"subscription {done.subscription_id} of {done.account_id} canceled at Stripe ({done.status})")
    if done.refund is not None:
        paid = done.refunded_payment
        click.echo(
            f"refund {done.refund.get('id')} of {done.refund.get('amount', 0) / 100:.2f} {paid.currency.upper()}"
            f" for payment {paid.provider_payment_id}: {done.refund.get('status')}"
        )
    click.echo("billhook applies it when Stripe's webhooks arrive (billhook accounts show " + done.account_id + ")")


commands = [subscriptions_group]
