"""Email templates: Jinja2 HTML and plain text, each extending one base layout per format.

`render(template, context)` gives the subject and both bodies. A missing context value is an
error (StrictUndefined), never a silently blank sentence; optional values use `default(...)`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

# Templates the main app asks for through the internal API.
ACCOUNT = ("welcome", "password_reset", "email_verification")
# Templates billhook sends for billing events.
TRANSACTIONAL = (
    "payment_confirmation",
    "payment_approved",
    "payment_rejected",
    "payment_failed",
    "payment_action_required",
    "subscription_activated",
    "subscription_renewal",
    "trial_ending",
    "low_credits",
    "refund_notification",
)
TEMPLATES = ACCOUNT + TRANSACTIONAL

SUBJECTS = {
    "welcome": "Welcome to {{ product_name }}",
    "password_reset": "Reset your {{ product_name }} password",
    "email_verification": "Verify your email address",
    "payment_confirmation": "Payment received: {{ amount_cents | money(currency) }}",
    "payment_approved": "Your payment was approved",
    "payment_rejected": "Your payment was declined",
    "payment_failed": "Action needed: your payment of {{ amount_cents | money(currency) }} failed",
    "payment_action_required": "Action needed: confirm your payment of {{ amount_cents | money(currency) }}",
    "subscription_activated": "Your {{ plan_name }} subscription is active",
    "subscription_renewal": "Your {{ plan_name }} subscription has renewed",
    "trial_ending": "Your {{ plan_name }} trial ends on {{ trial_end }}",
    "low_credits": "Your credit balance is low ({{ balance }} left)",
    "refund_notification": "Refund of {{ amount_cents | money(currency) }} issued",
}

# What each template needs in its context (beyond the optional `name`): the internal API checks
# these, the preview command and the tests use the samples.
SAMPLES: dict[str, dict] = {
    "welcome": {"name": "Ada"},
    "password_reset": {"name": "Ada", "reset_url": "https://app.example.com/reset?token=sample", "expires_minutes": 30},
    "email_verification": {"name": "Ada", "verification_url": "https://app.example.com/verify?token=sample"},
    "payment_confirmation": {
        "name": "Ada",
        "amount_cents": 2900,
        "currency": "usd",
        "description": "Starter credit package (1,000 credits)",
        "invoice_number": "BH-2026-000042",
        "credits": 1000,
    },
    "payment_approved": {
        "name": "Ada",
        "amount_cents": 2900,
        "currency": "usd",
        "description": "Starter credits",
        "invoice_number": "BH-2026-000044",
        "credits": 1000,
    },
    "payment_rejected": {
        "name": "Ada",
        "amount_cents": 2900,
        "currency": "usd",
        "description": "Starter credits",
        "reason": "The payment method was declined.",
    },
    "payment_failed": {
        "name": "Ada",
        "amount_cents": 1900,
        "currency": "usd",
        "description": "Pro plan",
        "reason": "Your card was declined.",
    },
    "payment_action_required": {
        "name": "Ada",
        "amount_cents": 1900,
        "currency": "usd",
        "description": "Pro plan",
        "action_url": "https://invoice.stripe.com/i/acct_sample/test_sample",
    },
    "subscription_activated": {"name": "Ada", "plan_name": "Pro", "credits": 5000, "period_end": "2026-12-24"},
    "subscription_renewal": {
        "name": "Ada",
        "plan_name": "Pro",
        "amount_cents": 1900,
        "currency": "usd",
        "invoice_number": "BH-2026-000043",
        "credits": 5000,
        "period_end": "2027-01-24",
    },
    "trial_ending": {"name": "Ada", "plan_name": "Pro", "trial_end": "2026-12-24"},
    "low_credits": {"name": "Ada", "balance": 42, "threshold": 100},
    "refund_notification": {
        "name": "Ada",
        "amount_cents": 2900,
        "currency": "usd",
        "description": "Starter credit package",
        "credits_reversed": 1000,
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "welcome": (),
    "password_reset": ("reset_url",),
    "email_verification": ("verification_url",),
}

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
# Stripe's zero-decimal currencies (amounts are already whole units).
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def money(cents: int | None, currency: str | None = "usd") -> str:
    currency = (currency or "usd").lower()
    amount = f"{cents or 0:,}" if currency in _ZERO_DECIMAL else f"{(cents or 0) / 100:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


def _environment() -> Environment:
    # HTML templates are autoescaped; text templates and subjects are plain text.
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["money"] = money
    return env


_ENV = _environment()


@functools.cache
def _subject_template(template: str) -> Template:
    """Compiled once per process: compiling the subject line was a third of an email's send cost."""
    return _ENV.from_string(SUBJECTS[template])


def render(
    template: str, context: dict, *, product_name: str = "billhook", app_url: str = "http://localhost:3000"
) -> Rendered:
    """Subject, HTML and text for one template. Raises KeyError for an unknown template and
    jinja2.UndefinedError when the context lacks a value the template needs."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown email template {template!r}")
    values = {"name": None, **context, "product_name": product_name, "app_url": app_url}
    subject = _subject_template(template).render(values).strip()
    values["subject"] = subject
    html = _ENV.get_template(f"{template}.html").render(values)
    text = re.sub(r"\n{3,}", "\n\n", _ENV.get_template(f"{template}.txt").render(values)).strip() + "\n"
    return Rendered(subject=subject, html=html, text=text)
