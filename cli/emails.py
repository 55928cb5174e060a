from __future__ import annotations

import json
from pathlib import Path

import click
from jinja2 import TemplateError

from cli.context import CliContext, pass_ctx
from shared.credentials import get_provider
from shared.email import outbox
from shared.email import render as emails
from shared.models import EmailOutbox


@click.group("emails")
def emails_group() -> None:
    """Email templates and the outbox."""


@emails_group.command("preview")
@click.argument("template", type=click.Choice(emails.TEMPLATES))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: var/).")
@click.option("--text", "as_text", is_flag=True, help="Write the plain-text body instead of the HTML.")
@click.option("--context", "context_json", help="JSON object merged over the sample data.")
@pass_ctx
def preview(ctx: CliContext, template: str, out: Path | None, as_text: bool, context_json: str | None) -> None:
    """Render TEMPLATE with sample data to a file, for a look in a browser."""
    context = dict(emails.SAMPLES[template])
    if context_json:
        try:
            extra = json.loads(context_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--context") from exc
        if not isinstance(extra, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--context")
        context.update(extra)
    try:
        rendered = emails.render(template, context, **_branding(ctx))
    except TemplateError as exc:
        raise click.ClickException(f"{template} cannot be rendered: {exc}") from exc
    if out is None:
        out = ctx.settings.var_dir / "email-previews" / f"{template}.{'txt' if as_text else 'html'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rendered.text if as_text else rendered.html, encoding="utf-8")
    click.echo(f"Subject: {rendered.subject}")
    click.echo(f"wrote {out}")


def _branding(ctx: CliContext) -> dict:
    """The product name the sender would use; a store that is not there yet is no reason to fail."""
    product_name = "billhook"
    try:
        with ctx.session_factory() as session:
            provider = get_provider(session, "resend")
            product_name = ((provider.config if provider else None) or {}).get("product_name") or product_name
    except Exception:  # noqa: BLE001, S110 - previews work without a database
        pass
    return {"product_name": product_name, "app_url": ctx.settings.frontend_url}


@emails_group.command("list")
@click.option("--status", type=click.Choice([outbox.PENDING, outbox.SENT, outbox.FAILED]))
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def list_emails(ctx: CliContext, status: str | None, limit: int) -> None:
    """The newest outbox rows (pending and failed unless --status), without their contents."""
    with ctx.session_factory() as session:
        rows = outbox.pending_or_failed(session, status=status, limit=limit)
        shown = [_row(r) for r in rows]
    click.echo(json.dumps(shown, indent=2, default=str))


@emails_group.command("retry")
@click.argument("outbox_id", type=int)
@pass_ctx
def retry(ctx: CliContext, outbox_id: int) -> None:
    """Make a failed email pending again and publish its send task (the sweep does, if the broker
    is down). It is still sent at most once: the same key goes to Resend."""
    with ctx.session_factory.begin() as session:
        row = outbox.lock_row(session, outbox_id)
        if row is None:
            raise click.ClickException(f"no outbox row {outbox_id}")
        if row.status == outbox.SENT:
            raise click.ClickException(f"outbox row {outbox_id} was sent already")
        row.status = outbox.PENDING
        row.next_attempt_at = None
    try:
        from worker.celery_app import make_celery
        from worker.messages import enqueue_email

        enqueue_email(make_celery(ctx.settings), outbox_id)
        click.echo(f"outbox row {outbox_id} is pending; send task published")
    except Exception as exc:  # noqa: BLE001 - the broker is down: the sweep publishes it
        click.echo(
            f"outbox row {outbox_id} is pending; the broker is unavailable ({type(exc).__name__}),"
            " the sweep will send it"
        )


def _row(row: EmailOutbox) -> dict:
    return {
        "id": row.id,
        "template": row.template,
        "account_id": row.account_id,
        "status": row.status,
        "attempts": row.attempts,
        "backend": row.backend,
        "provider_message_id": row.provider_message_id,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
    }


commands = [emails_group]
