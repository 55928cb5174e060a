"""Reading Stripe payloads, and finding the account and subscription an event belongs to.

`data_object` is the one normalising step at the edge of the Stripe handlers: it reads the event's
API version and hands the handlers its object in the current shapes (see shared/stripe/versions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from shared.billing import subscriptions
from shared.billing.accounts import account_for_stripe_customer, ensure_account
from shared.errors import PermanentError, RetryLater
from shared.models import Plan, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.stripe import versions

PROVIDER = "stripe"


def ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def event_version(event: WebhookEvent) -> versions.ApiVersion:
    """The event's API version; UnsupportedVersion (permanent) for one billhook cannot read."""
    return versions.parse((event.payload or {}).get("api_version"))


def data_object(event: WebhookEvent) -> dict:
    """The event's object, read from its API version's shapes into the current ones."""
    version = event_version(event)
    try:
        obj = event.payload["data"]["object"]
    except (KeyError, TypeError) as exc:
        raise PermanentError(f"{event.type} in Stripe API version {version.name} has no data.object") from exc
    if not isinstance(obj, dict):
        raise PermanentError(f"{event.type} in Stripe API version {version.name}: data.object is not an object")
    return versions.normalize(version, event.type, obj)


def missing(event: WebhookEvent, obj: dict, field: str) -> PermanentError:
    """The error for an event lacking a field a handler needs (`field` in current-shape terms)."""
    return versions.missing_field(event_version(event), event.type, obj.get("id"), field)


def event_at(event: WebhookEvent) -> datetime:
    """When Stripe created the event: the order subscription changes are applied in."""
    return event.event_created_at or event.received_at


def metadata(obj: dict) -> dict:
    return obj.get("metadata") or {}


def expandable_id(value) -> str | None:
    """An expandable field: an id string, or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def plan_by_id(session: Session, plan_id: str | None) -> Plan | None:
    return session.get(Plan, plan_id) if plan_id else None


def invoice_metadata(invoice: dict) -> dict:
    """The subscription's metadata as the invoice carries it (billhook puts account and plan there)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("metadata") or {}


def initial_period_key(subscription_id: str) -> str:
    """The first period's grant key, shared by the checkout completion and the first invoice."""
    return f"stripe:subscription:{subscription_id}:initial"


def lock_subscription_for(session: Session, outcome: Outcome, subscription_id: str, obj: dict) -> Subscription:
    """Find the account a subscription event belongs to, whatever order events came in: the
    subscription row, else the account id billhook put in the metadata, else the Stripe customer.
    Then lock the account and the subscription, in that order (see `ensure_account`)."""
    account = subscriptions.lock_subscriber(session, PROVIDER, subscription_id)
    if account is None:
        meta = metadata(obj) if obj.get("object") == "subscription" else invoice_metadata(obj)
        account_id = meta.get("account_id")
        if account_id is None:
            known = account_for_stripe_customer(session, expandable_id(obj.get("customer")))
            account_id = known.id if known else None
        if account_id is None:
            raise RetryLater(f"no account known yet for subscription {subscription_id}")
        account = ensure_account(session, account_id)
    account_id = account.id
    outcome.touched(account_id)
    return subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )
