from __future__ import annotations

from datetime import timedelta

import click

from cli.context import CliContext, pass_ctx
from web.auth import issue_token


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for the billing API (the main app mints its own; these are for development)."""


@tokens_group.command("create")
@click.option("--account", "account_id", required=True, help="The account id (the token's sub).")
@click.option("--email", help="Email to create or update the account with.")
@click.option("--name", help="Name to create or update the account with.")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1, 30 * 24 * 3600), help="Seconds.")
@pass_ctx
def create(ctx: CliContext, account_id: str, email: str | None, name: str | None, ttl: int) -> None:
    """Print a JWT signed with BILLHOOK_JWT_SECRET for `Authorization: Bearer <token>`."""
    if len(account_id) > 64:
        raise click.BadParameter("at most 64 characters", param_hint="--account")
    click.echo(issue_token(ctx.settings, account_id, email=email, name=name, ttl=timedelta(seconds=ttl)))


commands = [tokens_group]
