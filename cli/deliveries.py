"""`billhook deliveries`: outgoing webhook deliveries, for ops."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from cli.context import CliContext, pass_ctx
from shared.models.outgoing import DeliveryStatus
from shared.outgoing import delivery


@click.group("deliveries")
def deliveries_group() -> None:
    """Outgoing webhook deliveries: list, show, retry."""


@deliveries_group.command("list")
@click.option("--failed", is_flag=True, help="Only deliveries that failed for good.")
@click.option("--status", type=click.Choice(tuple(DeliveryStatus)))
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def list_(ctx: CliContext, failed: bool, status: str | None, limit: int) -> None:
    """The newest deliveries (event type, account, sequence, status), without bodies."""
    with ctx.session_factory() as session:
        shown = delivery.list_deliveries(session, status=DeliveryStatus.FAILED if failed else status, limit=limit)
    click.echo(json.dumps(shown, indent=2, default=str))


@deliveries_group.command("show")
@click.argument("delivery_id", type=int)
@pass_ctx
def show(ctx: CliContext, delivery_id: int) -> None:
    """One delivery with the event body it sends."""
    with ctx.session_factory() as session:
        shown = delivery.show_delivery(session, delivery_id)
    if shown is None:
        raise click.ClickException(f"no delivery {delivery_id}")
    click.echo(json.dumps(shown, indent=2, default=str))


@deliveries_group.command("retry")
@click.argument("delivery_id", type=int)
@pass_ctx
def retry(ctx: CliContext, delivery_id: int) -> None:
    """Make a failed delivery due now, with a new retry window, and publish its task (the sweep
    does if the broker is down)."""
    with ctx.session_factory.begin() as session:
        if not delivery.retry(session, delivery_id, at=datetime.now(UTC)):
            raise click.ClickException(f"no delivery {delivery_id} waiting to be delivered")
    try:
        from worker.celery_app import make_celery
        from worker.messages import enqueue_delivery

        enqueue_delivery(make_celery(ctx.settings), delivery_id)
        click.echo(f"delivery {delivery_id} is pending; task published")
    except Exception as exc:  # noqa: BLE001 - the broker is down: the sweep publishes it
        click.echo(
            f"delivery {delivery_id} is pending; the broker is unavailable ({type(exc).__name__}), the sweep will"
        )


commands = [deliveries_group]
