from __future__ import annotations

import click

from cli import (
    accounts,
    catalog,
    credits,
    db,
    deliveries,
    dev,
    emails,
    endpoints,
    events,
    payments,
    providers,
    reconcile,
    subscriptions,
    tokens,
)
from cli.context import CliContext
from shared.config import Settings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """billhook: billing webhooks and exactly-once job processing."""
    ctx.obj = CliContext(Settings.from_env())


for module in (
    db,
    providers,
    accounts,
    catalog,
    credits,
    payments,
    subscriptions,
    events,
    dev,
    tokens,
    reconcile,
    emails,
    endpoints,
    deliveries,
):
    for command in module.commands:
        main.add_command(command)
