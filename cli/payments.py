"""Manual payments: list the pending ones, approve or reject one (once: a second decision, or
one racing the ops page, finds it decided)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import click

from cli.context import CliContext, pass_ctx
from shared.billing import manual_payments
from shared.billing.checkout import NotFound
from shared.outcome import Outcome


@click.group("payments")
def payments_group() -> None:
    """Manual payments (bank transfer, cheque, invoice) waiting for an operator."""


@payments_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def list_pending(ctx: CliContext, as_json: bool) -> None:
    """The pending manual payments, oldest first."""
    with ctx.session_factory() as session:
        rows = [
            {
                "id": p.provider_payment_id,
                "account_id": p.account_id,
                "item": p.plan_id and f"plan {p.plan_id}" or f"package {p.package_id}",
                "amount_cents": p.amount_cents,
                "currency": p.currency,
                "method": m.method,
                "reference": m.reference,
                "requested_at": m.created_at,
            }
            for p, m in manual_payments.pending(session, limit=200)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no pending manual payments")
    for r in rows:
        click.echo(
            f"{r['id']}  {r['account_id']}  {r['item']}  {r['amount_cents'] / 100:.2f} {r['currency'].upper()}"
            f"  {r['method']}  {r['reference'] or ''}  {r['requested_at']:%Y-%m-%d %H:%M}"
        )


@payments_group.command("approve")
@click.argument("payment_id")
@click.option("--reason", help="A note kept with the decision.")
@click.option("--by", "actor", help="Who decides (default: cli:<login>).")
@pass_ctx
def approve(ctx: CliContext, payment_id: str, reason: str | None, actor: str | None) -> None:
    """Approve: grant the package's credits, or one period of the plan and its credits."""
    _decide(ctx, payment_id, approve=True, reason=reason, actor=actor)


@payments_group.command("reject")
@click.argument("payment_id")
@click.option("--reason", help="Why; the customer's email says it.")
@click.option("--by", "actor", help="Who decides (default: cli:<login>).")
@pass_ctx
def reject(ctx: CliContext, payment_id: str, reason: str | None, actor: str | None) -> None:
    """Reject: nothing is granted; the customer is told."""
    _decide(ctx, payment_id, approve=False, reason=reason, actor=actor)


def _decide(ctx: CliContext, payment_id: str, *, approve: bool, reason: str | None, actor: str | None) -> None:
    outcome = Outcome()
    try:
        with ctx.session_factory.begin() as session:
            decision = manual_payments.decide(
                session,
                outcome,
                payment_id,
                approve=approve,
                actor=actor or f"cli:{login_name()}",
                reason=reason,
                at=datetime.now(UTC),
            )
            status, decided_by = decision.payment.status, decision.manual.decided_by
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    if not decision.decided_now:
        raise click.ClickException(f"manual payment {payment_id} was already decided: {status} by {decided_by}")
    click.echo(f"manual payment {payment_id} {'approved' if approve else 'rejected'}")
    ctx.hand_over(outcome)


def login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container without a passwd entry)
        return "unknown"


commands = [payments_group]
