from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import click
import requests
from sqlalchemy import select

from cli.context import CliContext, pass_ctx
from shared import credentials, inbox
from shared.models import CreditLedgerEntry, WebhookEvent
from shared.models.events import FAILED, STATUSES
from shared.signing import stripe_signature_header


@click.group("events")
def events_group() -> None:
    """The inbox of provider events."""


@events_group.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--provider")
@click.option("--type", "event_type")
@click.option("--account")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def list_events(ctx: CliContext, status, provider, event_type, account, limit) -> None:
    """Recent events, newest first."""
    stmt = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    for column, value in (("status", status), ("provider", provider), ("type", event_type), ("account_id", account)):
        if value:
            stmt = stmt.where(getattr(WebhookEvent, column) == value)
    with ctx.session_factory() as session:
        for e in session.scalars(stmt):
            click.echo(
                f"{e.id:>7}  {e.received_at:%Y-%m-%d %H:%M:%S}  {e.provider:<6} {e.status:<10} "
                f"{e.attempts:>2}  {e.type:<40} {e.event_id}  {e.account_id or ''}"
            )


@events_group.command("show")
@click.argument("event_pk", type=int)
@pass_ctx
def show(ctx: CliContext, event_pk: int) -> None:
    """One event: payload, attempts, last error and the ledger entries it produced."""
    with ctx.session_factory() as session:
        event = session.get(WebhookEvent, event_pk)
        if event is None:
            raise click.ClickException(f"no event {event_pk}")
        effects = session.scalars(select(CreditLedgerEntry).filter_by(source_event_id=event.id)).all()
        shown = {
            "id": event.id,
            "provider": event.provider,
            "event_id": event.event_id,
            "type": event.type,
            "status": event.status,
            "attempts": event.attempts,
            "last_error": event.last_error,
            "received_at": event.received_at,
            "processed_at": event.processed_at,
            "account": event.account_id,
            "ledger_entries": [{"amount": e.amount, "kind": e.kind, "key": e.idempotency_key} for e in effects],
            "payload": event.payload,
        }
    click.echo(json.dumps(shown, indent=2, default=str))


@events_group.command("replay")
@click.argument("event_pk", type=int, required=False)
@click.option("--failed", is_flag=True, help="Replay every failed event.")
@pass_ctx
def replay(ctx: CliContext, event_pk: int | None, failed: bool) -> None:
    """Queue events again. Effects stay exactly once: each is keyed in the store."""
    from worker.celery_app import enqueue_event, make_celery

    if (event_pk is None) == (not failed):
        raise click.UsageError("give one EVENT_PK or --failed")
    with ctx.session_factory.begin() as session:
        pks = list(session.scalars(select(WebhookEvent.id).filter_by(status=FAILED))) if failed else [event_pk]
        now = datetime.now(UTC)
        requeued = [pk for pk in pks if inbox.requeue(session, pk, at=now)]
    click.echo(f"replayed {len(requeued)} event(s)" + (f": {', '.join(map(str, requeued))}" if requeued else ""))
    if not requeued:
        return
    celery = make_celery(ctx.settings)
    try:
        for pk in requeued:
            enqueue_event(celery, pk)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the store already holds the replay
        # The events are `received` again (committed above), so the sweeper queues them once the
        # broker is back; a traceback here would suggest the replay was lost.
        click.echo(
            f"the broker is unreachable ({type(exc).__name__}); the sweeper will queue the replayed events",
            err=True,
        )


@events_group.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    default=lambda: f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/webhooks/stripe",
    show_default="http://127.0.0.1:$PORT/webhooks/stripe",
)
@click.option("--secret", help="Signing secret; default: the stored Stripe webhook secret.")
@pass_ctx
def send(ctx: CliContext, file: Path, url: str, secret: str | None) -> None:
    """Sign a Stripe event file the way Stripe does and POST it."""
    payload = file.read_bytes()
    if secret is None:
        with ctx.session_factory() as session:
            provider = credentials.get_provider(session, "stripe")
            stored = (provider.webhook_secrets or []) if provider else []
        if not stored:
            raise click.ClickException("no Stripe webhook secret stored: run `billhook seed` or pass --secret")
        secret = stored[0]
    response = requests.post(
        url,
        data=payload,
        timeout=10,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature_header(payload, secret)},
    )
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        raise SystemExit(1)


commands = [events_group]
