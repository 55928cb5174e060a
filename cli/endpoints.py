"""`billhook endpoints`: where billhook sends its signed outgoing webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from cli.context import CliContext, pass_ctx
from shared.outgoing import endpoints
from shared.outgoing.events import TYPES


@click.group("endpoints")
def endpoints_group() -> None:
    """The main app's webhook endpoints (Standard Webhooks signatures)."""


def _refusing(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except endpoints.EndpointError as exc:
        raise click.ClickException(str(exc)) from exc


@endpoints_group.command("add")
@click.argument("url")
@click.option("--events", "event_types", multiple=True, type=click.Choice(TYPES), help="Only these types (repeat).")
@click.option("--description", help="A note for ops.")
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow loopback and private addresses (a receiver on this host or network).",
)
@pass_ctx
def add(ctx: CliContext, url: str, event_types: tuple[str, ...], description: str | None, allow_private: bool) -> None:
    """Register URL; prints its signing secret once (keep it: it is not shown again)."""
    now = datetime.now(UTC)
    with ctx.session_factory.begin() as session:
        created = _refusing(
            endpoints.add_endpoint,
            session,
            url,
            event_types=list(event_types),
            allow_private=allow_private,
            description=description,
            at=now,
        )
        shown = endpoints.describe(created.endpoint, now)
    click.echo(json.dumps(shown, indent=2))
    click.echo(f"secret: {created.secret}")


@endpoints_group.command("list")
@pass_ctx
def list_(ctx: CliContext) -> None:
    """Every endpoint, without secrets."""
    now = datetime.now(UTC)
    with ctx.session_factory() as session:
        shown = [endpoints.describe(e, now) for e in endpoints.list_endpoints(session)]
    click.echo(json.dumps(shown, indent=2))


@endpoints_group.command("rotate-secret")
@click.argument("endpoint_id")
@click.option(
    "--overlap-seconds",
    type=click.IntRange(min=0),
    help="How long the old secret keeps signing too (default: BILLHOOK_OUTGOING_SECRET_OVERLAP_SECONDS).",
)
@pass_ctx
def rotate_secret(ctx: CliContext, endpoint_id: str, overlap_seconds: int | None) -> None:
    """A new signing secret, printed once; the old one signs too through the overlap."""
    overlap = ctx.settings.outgoing_secret_overlap_seconds if overlap_seconds is None else overlap_seconds
    with ctx.session_factory.begin() as session:
        secret = _refusing(endpoints.rotate_secret, session, endpoint_id, overlap_seconds=overlap, at=datetime.now(UTC))
    click.echo(f"secret: {secret}")
    click.echo(f"the previous secret signs too for {overlap} seconds")


@endpoints_group.command("disable")
@click.argument("endpoint_id")
@pass_ctx
def disable(ctx: CliContext, endpoint_id: str) -> None:
    """No new deliveries; pending ones wait until it is enabled again."""
    with ctx.session_factory.begin() as session:
        _refusing(endpoints.set_enabled, session, endpoint_id, False, at=datetime.now(UTC))
    click.echo(f"endpoint {endpoint_id} disabled")


@endpoints_group.command("enable")
@click.argument("endpoint_id")
@pass_ctx
def enable(ctx: CliContext, endpoint_id: str) -> None:
    """Deliveries resume; the sweep picks up what waited."""
    with ctx.session_factory.begin() as session:
        _refusing(endpoints.set_enabled, session, endpoint_id, True, at=datetime.now(UTC))
    click.echo(f"endpoint {endpoint_id} enabled")


commands = [endpoints_group]
