from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from cli import service
from cli.context import CliContext, pass_ctx
from shared import event_ops
from shared.models import WebhookEvent
from shared.models.events import EventStatus
from shared.stripe.signing import stripe_signature_header


@click.group("events")
def events_group() -> None:
    """The inbox of provider events."""


_RELATIVE = re.compile(r"^(\d+)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an ISO date or datetime (UTC unless it says otherwise), or an age: 90m, 12h, 7d."""
    if value is None:
        return None
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is neither an ISO date/time nor an age like 90m, 12h, 7d", param_hint="--since"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@events_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in EventStatus]))
@click.option("--provider")
@click.option("--type", "event_type")
@click.option("--account")
@click.option("--since", help="Received at or after: ISO date/time, or an age like 90m, 12h, 7d.")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def list_events(ctx: CliContext, status, provider, event_type, account, since, limit) -> None:
    """Recent events, newest first."""
    wanted = event_ops.EventFilter(
        provider=provider, type=event_type, status=status, account=account, since=parse_since(since), limit=limit
    )
    with ctx.session_factory() as session:
        for e in event_ops.find_events(session, wanted):
            click.echo(
                f"{e.id:>7}  {e.received_at:%Y-%m-%d %H:%M:%S}  {e.provider:<6} {e.status:<10} "
                f"{e.attempts:>2}  {e.type:<40} {e.event_id}  {e.account_id or ''}"
            )


@events_group.command("show")
@click.argument("event_pk", type=int)
@pass_ctx
def show(ctx: CliContext, event_pk: int) -> None:
    """One event: payload, attempts, last error, and its effects (ledger entries, payments, subscription)."""
    with ctx.session_factory() as session:
        event = session.get(WebhookEvent, event_pk)
        if event is None:
            raise click.ClickException(f"no event {event_pk}")
        effects = event_ops.event_effects(session, event)
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
            **effects,
            "payload": event.payload,
        }
    click.echo(json.dumps(shown, indent=2, default=str))


@events_group.command("replay")
@click.argument("event_pk", type=int, required=False)
@click.option("--failed", is_flag=True, help="Replay every failed event.")
@click.option("--since", help="Replay events received since: ISO date/time or an age (90m, 12h, 7d).")
@click.option("--force", is_flag=True, help="Also re-run events already done (e.g. after a handler fix).")
@pass_ctx
def replay(ctx: CliContext, event_pk: int | None, failed: bool, since: str | None, force: bool) -> None:
    """Queue events again. Effects stay exactly once: each is keyed in the store.

    Without --force only events not done are replayed (failed, or stuck waiting)."""
    from worker.celery_app import make_celery
    from worker.messages import enqueue_event

    if (event_pk is None) == (not (failed or since)):
        raise click.UsageError("give one EVENT_PK, or --failed and/or --since")
    with ctx.session_factory.begin() as session:
        pks = event_ops.replay_candidates(
            session, event_pk=event_pk, failed=failed, since=parse_since(since), include_done=force
        )
        now = datetime.now(UTC)
        requeued = [pk for pk in pks if event_ops.reset_for_replay(session, pk, at=now, include_done=force)]
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


@events_group.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=event_ops.MIN_RETENTION_DAYS),
    required=True,
    help=f"Days; at least {event_ops.MIN_RETENTION_DAYS} (providers redeliver for up to 3).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go, delete nothing.")
@pass_ctx
def purge(ctx: CliContext, days: int, dry_run: bool) -> None:
    """Retention: delete done (succeeded/ignored) events received more than DAYS ago.

    Failed and waiting events are kept. Ledger entries keep their amounts, keys and payments;
    only their link to the purged event is cleared."""
    before = datetime.now(UTC) - timedelta(days=days)
    with ctx.session_factory.begin() as session:
        result = event_ops.purge_done_events(session, before=before, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {result.events} done event(s) received before {before:%Y-%m-%d %H:%M} UTC;"
        f" {result.ledger_entries_unlinked} ledger entr(y/ies) unlinked"
    )


@events_group.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    default=lambda: f"{service.default_base_url()}/webhooks/stripe",
    show_default="http://127.0.0.1:$PORT/webhooks/stripe",
)
@click.option("--secret", help="Signing secret; default: the stored Stripe webhook secret.")
@pass_ctx
def send(ctx: CliContext, file: Path, url: str, secret: str | None) -> None:
    """Sign a Stripe event file the way Stripe does and POST it."""
    payload = file.read_bytes()
    if secret is None:
        with ctx.session_factory() as session:
            secret = service.stripe_webhook_secret(session)
    headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature_header(payload, secret)}
    response = service.post(url, payload, headers)
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        raise SystemExit(1)


commands = [events_group]
