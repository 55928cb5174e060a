"""Credits: an operator's signed adjustment of an account's balance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from cli.context import CliContext, pass_ctx
from cli.payments import login_name
from shared.billing import ledger, notifications
from shared.models import Account
from shared.outcome import Outcome


@click.group("credits")
def credits_group() -> None:
    """Account credit balances."""


@credits_group.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("account_id")
@click.argument("amount", type=int)
@click.option("--reason", required=True, help="Why (kept on the ledger entry).")
@click.option("--key", help="Idempotency key: the same key adjusts once (default: a new one).")
@click.option("--by", "actor", help="Who adjusts (default: cli:<login>).")
@pass_ctx
def adjust(ctx: CliContext, account_id: str, amount: int, reason: str, key: str | None, actor: str | None) -> None:
    """Add (AMOUNT > 0) or take (AMOUNT < 0) credits, once per --key; it may go below zero."""
    if amount == 0 or abs(amount) > ledger.MAX_ADJUSTMENT:
        raise click.BadParameter(f"a non-zero number of at most {ledger.MAX_ADJUSTMENT}", param_hint="AMOUNT")
    if not reason.strip() or len(reason) > 300:
        raise click.BadParameter("1 to 300 characters", param_hint="--reason")
    full_key = f"adjust:{key or uuid.uuid4().hex}"
    outcome = Outcome()
    now = datetime.now(UTC)
    try:
        with ctx.session_factory.begin() as session:
            adjusted = ledger.adjust_credits(
                session,
                outcome,
                account_id=account_id,
                amount=amount,
                reason=reason.strip(),
                actor=(actor or f"cli:{login_name()}")[:100],
                idempotency_key=full_key,
                at=now,
            )
            if not adjusted.replayed:
                notifications.low_credits_if_crossed(
                    session,
                    outcome,
                    session.get(Account, account_id),
                    before=adjusted.balance_before,
                    after=adjusted.balance_after,
                    cause_key=full_key,
                    at=now,
                )
    except (ledger.UnknownAccount, ledger.KeyReused) as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "already adjusted" if adjusted.replayed else "adjusted"
    click.echo(f"{account_id} {verb} by {amount:+}; balance {adjusted.balance_after}")
    ctx.hand_over(outcome)


commands = [credits_group]
