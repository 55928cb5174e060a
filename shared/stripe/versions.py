"""Stripe API versions: which ones billhook reads, and the one step that reads each era's shapes
into the shapes the handlers use (the current ones).

Stripe renders an event in the API version of the endpoint it is sent to, so one account's events
can come in any version its endpoints are pinned to. The versions fall into eras by the shape
changes billhook reads:

- pre-basil (2024-06-20 up to 2025-02-24.acacia): an invoice names its subscription on
  `invoice.subscription` and its payment on `invoice.payment_intent` / `invoice.charge`; a
  subscription's billing period is `subscription.current_period_*`; an invoice line says what it
  bills with `type` (`subscription` / `invoiceitem`), `subscription`, `proration`, `plan` and `price`.
- basil (2025-03-31.basil and later): `invoice.parent.subscription_details`, `invoice.payments`,
  `items.data[].current_period_*`, `lines.data[].parent.subscription_item_details` and
  `lines.data[].pricing.price_details.price`.

An event older than the range is refused (PermanentError naming its version); one newer than the
newest version billhook knows is read with the newest era's shapes and flagged. See
docs/stripe-api-versions.md.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter as Tally
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import metrics
from shared.errors import PermanentError
from shared.logs import log_line
from shared.models import WebhookEvent

log = logging.getLogger("billhook.stripe.versions")

OLDEST_SUPPORTED = "2024-06-20"
BASIL = "2025-03-31"
# The versions Stripe has released in the supported range, from its changelog. A version between
# two of them (or unnamed, like "2024-06-20") is read by its date.
KNOWN_VERSIONS = (
    "2024-06-20",
    "2024-09-30.acacia",
    "2024-10-28.acacia",
    "2024-11-20.acacia",
    "2024-12-18.acacia",
    "2025-01-27.acacia",
    "2025-02-24.acacia",
    "2025-03-31.basil",
    "2025-04-30.basil",
    "2025-05-28.basil",
    "2025-06-30.basil",
    "2025-07-30.basil",
    "2025-08-27.basil",
    "2025-09-30.clover",
    "2025-10-29.clover",
    "2025-11-17.clover",
    "2025-12-15.clover",
    "2026-02-25.clover",
    "2026-04-22.dahlia",
    "2026-10-28.endive",  # the version the pinned stripe SDK (16.1.0) makes its requests in
)
NEWEST_KNOWN = KNOWN_VERSIONS[-1]
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.[a-z]+)?$")
NO_VERSION = "(none)"
RECENT_EVENTS = 500  # how many of the latest Stripe events `recent_versions` looks at


class Era(StrEnum):
    PRE_BASIL = "pre-basil"
    BASIL = "basil"


@dataclass(frozen=True)
class ApiVersion:
    name: str
    era: Era
    newer_than_known: bool = False


class UnsupportedVersion(PermanentError):
    pass


def _date(name: str) -> str | None:
    found = _DATE.match(name)
    return found.group(1) if found else None


def parse(name: object) -> ApiVersion:
    """The era an event's `api_version` falls in; UnsupportedVersion for one outside the range."""
    if not isinstance(name, str) or _date(name) is None:
        raise UnsupportedVersion(
            f"Stripe event has no readable api_version ({name!r}); billhook reads {OLDEST_SUPPORTED} and later"
        )
    date = _date(name)
    if date < OLDEST_SUPPORTED:
        raise UnsupportedVersion(
            f"Stripe API version {name} is older than the supported range ({OLDEST_SUPPORTED} and later): "
            "set the webhook endpoint's API version to a supported one"
        )
    era = Era.PRE_BASIL if date < BASIL else Era.BASIL
    return ApiVersion(name, era, newer_than_known=date > _date(NEWEST_KNOWN))


# Where each field the handlers read is in a pre-basil payload: named in the error for a missing one.
_PRE_BASIL_NAMES = {
    "parent.subscription_details.subscription": "subscription",
    "parent.subscription_details.metadata": "subscription_details.metadata",
    "lines.data[].parent.subscription_item_details": "lines.data[].type=subscription",
    "lines.data[].pricing.price_details.price": "lines.data[].price (or .plan)",
    "items.data[].current_period_start": "current_period_start",
    "items.data[].current_period_end": "current_period_end",
    "payments.data[].payment.payment_intent": "payment_intent",
}


def missing_field(version: ApiVersion, event_type: str, object_id: object, field: str) -> PermanentError:
    """The error for an event whose shape lacks a field a handler needs, named as its era names it."""
    name = _PRE_BASIL_NAMES.get(field, field) if version.era is Era.PRE_BASIL else field
    return PermanentError(
        f"{event_type} {object_id} in Stripe API version {version.name} ({version.era} shapes) has no {name}"
    )


def normalize(version: ApiVersion, event_type: str, obj: dict) -> dict:
    """The event's object in the shapes the handlers read. Pre-basil objects are copied with the
    current fields filled in from their old places; basil objects are returned as they are."""
    if version.newer_than_known:
        log_line(
            log,
            "stripe event in an api version newer than billhook knows, read with the newest era's shapes",
            logging.WARNING,
            event_type=event_type,
            api_version=version.name,
            newest_known=NEWEST_KNOWN,
            era=Era.BASIL,
        )
        metrics.STRIPE_NEWER_API_VERSION.labels(version.name).inc()
    if version.era is Era.BASIL:
        return obj
    kind = obj.get("object")
    if kind == "invoice":
        return _invoice_from_pre_basil(obj)
    if kind == "subscription":
        return _subscription_from_pre_basil(obj)
    return obj


def _invoice_from_pre_basil(invoice: dict) -> dict:
    out = copy.deepcopy(invoice)
    subscription = invoice.get("subscription")
    out["parent"] = None
    if subscription:
        out["parent"] = {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription,
                "metadata": (invoice.get("subscription_details") or {}).get("metadata") or {},
            },
        }
    payments = []
    if invoice.get("payment_intent"):
        payments.append({"payment": {"type": "payment_intent", "payment_intent": invoice["payment_intent"]}})
    elif invoice.get("charge"):
        payments.append({"payment": {"type": "charge", "charge": invoice["charge"]}})
    out["payments"] = {"object": "list", "data": payments}
    lines = (out.get("lines") or {}).get("data") or []
    for line in lines:
        _line_from_pre_basil(line)
    return out


def _line_from_pre_basil(line: dict) -> None:
    kind = line.get("type")
    if kind == "subscription":
        line["parent"] = {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": line.get("subscription"),
                "subscription_item": line.get("subscription_item"),
                "proration": bool(line.get("proration")),
            },
        }
    elif kind == "invoiceitem":
        line["parent"] = {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": line.get("invoice_item"),
                "proration": bool(line.get("proration")),
                "subscription": line.get("subscription"),
            },
        }
    else:
        line["parent"] = None
    price = line.get("price") or line.get("plan")
    price_id = price.get("id") if isinstance(price, dict) else price
    product = price.get("product") if isinstance(price, dict) else None
    line["pricing"] = (
        {"type": "price_details", "price_details": {"price": price_id, "product": product}} if price_id else None
    )


def _subscription_from_pre_basil(subscription: dict) -> dict:
    out = copy.deepcopy(subscription)
    for item in (out.get("items") or {}).get("data") or []:
        item["current_period_start"] = subscription.get("current_period_start")
        item["current_period_end"] = subscription.get("current_period_end")
    return out


def recent_versions(session: Session, *, limit: int = RECENT_EVENTS) -> dict[str, int]:
    """How many of the latest Stripe events came in each API version."""
    version = WebhookEvent.payload["api_version"].as_string()
    latest = (
        select(version.label("api_version"))
        .where(WebhookEvent.provider == "stripe")
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    )
    return dict(Tally(NO_VERSION if v is None else str(v) for v in session.scalars(latest)))


def version_warnings(seen: dict[str, int]) -> list[str]:
    """What an operator should know about the versions seen: events that fail for their version,
    and versions newer than billhook knows (read with the newest era's shapes)."""
    warnings = []
    for name, count in sorted(seen.items()):
        try:
            version = parse(None if name == NO_VERSION else name)
        except UnsupportedVersion:
            warnings.append(
                f"{count} recent Stripe events in API version {name}, outside the supported range "
                f"({OLDEST_SUPPORTED} to {NEWEST_KNOWN}): they fail; set the endpoint's API version"
            )
            continue
        if version.newer_than_known:
            warnings.append(
                f"{count} recent Stripe events in API version {name}, newer than billhook knows "
                f"({NEWEST_KNOWN}): read with {Era.BASIL} shapes"
            )
    return warnings
