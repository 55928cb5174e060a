"""Reaching the running web service from the CLI (`events send`, `dev trigger`)."""

from __future__ import annotations

import os

import click
import requests
from sqlalchemy.orm import Session

from shared import credentials


def default_base_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


def post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """POST to web; a web that does not answer is one line naming the URL, not a traceback."""
    try:
        return requests.post(url, data=body, headers=headers, timeout=10)
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"billhook web is not answering at {url}: start it with `make run` (or pass --url)"
        ) from exc
    except requests.Timeout as exc:
        raise click.ClickException(f"billhook web at {url} did not answer within 10 s") from exc


def stripe_webhook_secret(session: Session) -> str:
    provider = credentials.get_provider(session, "stripe")
    stored = (provider.webhook_secrets or []) if provider else []
    if not stored:
        raise click.ClickException("no Stripe webhook secret stored: run `billhook seed` or pass --secret")
    return stored[0]
