from __future__ import annotations

import json

import click

from cli.context import CliContext, pass_ctx
from shared import credentials
from shared.stripe import versions


@click.group("providers")
def providers_group() -> None:
    """Provider credentials (stored in the integration providers table)."""


@providers_group.command("set")
@click.argument("name", type=click.Choice(credentials.PROVIDERS))
@click.option("--api-key", help="Stripe secret key, PayPal client id or Resend API key.")
@click.option("--api-secret", help="PayPal client secret.")
@click.option(
    "--webhook-secret",
    "webhook_secrets",
    multiple=True,
    help="Webhook signing secret; repeat to keep several during a rotation.",
)
@click.option("--webhook-id", help="PayPal webhook id.")
@click.option("--endpoint", help="Provider API base URL override.")
@click.option("--config", "config_json", help="JSON object of provider settings (merged).")
@click.option("--sandbox/--live", default=None)
@click.option("--active/--inactive", default=None)
@pass_ctx
def set_provider(
    ctx: CliContext, name, api_key, api_secret, webhook_secrets, webhook_id, endpoint, config_json, sandbox, active
) -> None:
    """Create or update a provider's credentials."""
    try:
        extra = json.loads(config_json) if config_json else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from exc
    if extra is not None and not isinstance(extra, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--config")
    with ctx.session_factory.begin() as session:
        existing = credentials.get_provider(session, name)
        merged = {**((existing.config if existing else None) or {}), **extra} if extra is not None else None
        provider = credentials.set_provider(
            session,
            name,
            api_key=api_key,
            api_secret=api_secret,
            webhook_secrets=list(webhook_secrets) or None,
            webhook_id=webhook_id,
            endpoint=endpoint,
            config=merged,
            sandbox=sandbox,
            active=active,
        )
        shown = credentials.masked_provider(provider)
    click.echo(json.dumps(shown, indent=2))


@providers_group.command("show")
@click.argument("name", required=False, type=click.Choice(credentials.PROVIDERS))
@pass_ctx
def show(ctx: CliContext, name) -> None:
    """Show providers with their secrets masked (Stripe's with the API versions of its latest events)."""
    with ctx.session_factory() as session:
        names = [name] if name else list(credentials.PROVIDERS)
        rows = [credentials.masked_provider(p) for n in names if (p := credentials.get_provider(session, n))]
        for row in rows:
            if row.get("name") == "stripe":
                row["api_versions"] = _stripe_api_versions(session)
    click.echo(json.dumps(rows, indent=2))


def _stripe_api_versions(session) -> dict:
    seen = versions.recent_versions(session)
    return {
        "supported": f"{versions.OLDEST_SUPPORTED} to {versions.NEWEST_KNOWN} (newer: read as the newest)",
        "seen_recently": seen,
        "warnings": versions.version_warnings(seen),
    }


commands = [providers_group]
