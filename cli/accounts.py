from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from cli.context import CliContext, pass_ctx
from shared.billing import duplicates
from shared.billing.account_summary import account_summary
from shared.billing.accounts import ensure_account
from shared.models import Account


@click.group("accounts")
def accounts_group() -> None:
    """Customer accounts, their subscription and credits."""


@accounts_group.command("create")
@click.option("--id", "account_id", required=True)
@click.option("--email", required=True)
@click.option("--name")
@pass_ctx
def create(ctx: CliContext, account_id: str, email: str, name: str | None) -> None:
    """Create an account (or update its email and name)."""
    with ctx.session_factory.begin() as session:
        ensure_account(session, account_id, email=email, name=name)
    click.echo(f"account {account_id} ready")


@accounts_group.command("show")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def show(ctx: CliContext, account_id: str, as_json: bool) -> None:
    """Balance, subscription, flagged duplicate subscriptions and recent ledger entries of an account."""
    with ctx.session_factory() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise click.ClickException(f"no account {account_id!r}")
        summary = account_summary(session, account, now=datetime.now(UTC))
        summary["duplicates"] = duplicates.duplicates_of_account(session, account_id)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"account   {summary['id']}  {summary['email'] or ''}  {summary['name'] or ''}")
    click.echo(f"balance   {summary['balance']} credits")
    sub = summary["subscription"]
    if sub:
        click.echo(
            f"plan      {sub['plan_id']} ({sub['status']}) via {sub['provider']} {sub['id']}"
            f"{', cancels at period end' if sub['cancel_at_period_end'] else ''}"
        )
        if sub["current_period_end"]:
            click.echo(f"period    {sub['current_period_start']} .. {sub['current_period_end']}")
    else:
        click.echo("plan      none")
    click.echo(f"entitled  {_entitled(summary)}")
    for dup in summary["duplicates"]:
        todo = f"; cancel it: billhook subscriptions cancel {dup['id']} --refund" if dup["open"] else ""
        click.echo(
            f"duplicate {dup['id']} via {dup['provider']} ({dup['status']}), a second subscription beside"
            f" {dup['duplicate_of']}: grants nothing{todo}"
        )
    for dispute in summary["disputes"]:
        click.echo(
            f"dispute   {dispute['id']} via {dispute['provider']}: {dispute['state']}"
            f" ({dispute['provider_status'] or '-'}),"
            f" {dispute['amount_cents'] / 100:.2f} {dispute['currency'].upper()},"
            f" credits taken back {dispute['credits_reversed']}, restored {dispute['credits_restored']}"
        )
    click.echo("ledger")
    for entry in summary["ledger"]:
        click.echo(
            f"  {entry['at']:%Y-%m-%d %H:%M:%S}  {entry['amount']:>+8}  {entry['kind']:<18} {entry['description']}"
        )


def _entitled(summary: dict) -> str:
    """yes or no, and for a past_due subscription when its grace ends (or ended)."""
    answer = "yes" if summary["entitled"] else "no"
    grace_end = (summary["subscription"] or {}).get("grace_ends_at")
    if grace_end is None:
        return answer
    return f"{answer} (past due: grace {'ends' if summary['entitled'] else 'ended'} {grace_end:%Y-%m-%d %H:%M} UTC)"


commands = [accounts_group]
