"""The catalog at Stripe: map plans and packages to an account's Prices by lookup key (`sync`),
create the Products and Prices an account lacks (`push`), and give a plan a new price (`reprice`).

Prices are immutable at Stripe, so a new amount is a new Price that takes over the lookup key
(`transfer_lookup_key`); subscribers on the former Price stay on it, and the plan keeps that Price
among its earlier ones so their renewals still resolve to the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.billing import catalog
from shared.models import CreditPackage, Plan
from shared.stripe.client import StripeGateway

FOUND = "found"
CHANGED = "changed"
CREATED = "created"
UNMAPPED = "unmapped"

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


def is_live_key(api_key: str | None) -> bool:
    return bool(api_key) and api_key.startswith(LIVE_KEY_PREFIXES)


@dataclass(frozen=True)
class Line:
    """What became of one plan or package: found as mapped, changed, created, or not mapped."""

    kind: str
    item_id: str
    lookup_key: str
    action: str
    price_id: str | None = None
    detail: str = ""

    def text(self, dry_run: bool = False) -> str:
        verb = {CHANGED: "would change", CREATED: "would create"}.get(self.action, self.action) if dry_run else None
        parts = [f"{verb or self.action:<12}", f"{self.kind:<7}", f"{self.item_id:<12}", self.lookup_key]
        if self.price_id:
            parts.append(f"-> {self.price_id}")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)


def sync(session: Session, gateway: StripeGateway, *, dry_run: bool = False) -> list[Line]:
    """Map every plan and package to the active Price holding its lookup key. A Price whose amount,
    currency or interval differs from the catalog's is reported, never mapped: customers would pay
    what the catalog does not say."""
    items = catalog.all_items(session)
    prices = gateway.prices_by_lookup_key([catalog.lookup_key(item) for item in items])
    lines = []
    for item in items:
        key = catalog.lookup_key(item)
        price = prices.get(key)
        if price is None:
            lines.append(_line(item, UNMAPPED, detail="no active Price has this lookup key"))
        elif (mismatch := _mismatch(item, price)) is not None:
            lines.append(_line(item, UNMAPPED, price["id"], mismatch))
        elif price["id"] == item.stripe_price_id:
            lines.append(_line(item, FOUND, price["id"]))
        else:
            lines.append(_line(item, CHANGED, price["id"], f"was {item.stripe_price_id or 'none'}"))
            if not dry_run:
                catalog.set_stripe_price(session, item, price["id"])
    return lines


def push(session: Session, gateway: StripeGateway, *, dry_run: bool = False) -> list[Line]:
    """Create the Price (and its Product) of every plan and package the account lacks, and map
    them. Run twice, it finds what the first run made. A Price holding the key at another amount
    is superseded by a new one (the key moves; its subscribers stay)."""
    items = catalog.all_items(session)
    prices = gateway.prices_by_lookup_key([catalog.lookup_key(item) for item in items])
    lines = []
    for item in items:
        price = prices.get(catalog.lookup_key(item))
        if price is not None and _mismatch(item, price) is None:
            if price["id"] == item.stripe_price_id:
                lines.append(_line(item, FOUND, price["id"]))
                continue
            lines.append(_line(item, CHANGED, price["id"], f"was {item.stripe_price_id or 'none'}"))
            if not dry_run:
                catalog.set_stripe_price(session, item, price["id"])
            continue
        superseded = price["id"] if price is not None else None
        if dry_run:
            lines.append(_line(item, CREATED, detail=f"supersedes {superseded}" if superseded else ""))
            continue
        created = _create_price(gateway, item, product_id=price["product"] if price else None, superseding=superseded)
        catalog.set_stripe_price(session, item, created["id"])
        lines.append(_line(item, CREATED, created["id"], f"supersedes {superseded}" if superseded else ""))
    return lines


def reprice(session: Session, gateway: StripeGateway, item: Plan | CreditPackage, price_cents: int) -> Line:
    """Sell `item` at a new amount from now on: a new Price on the current Price's Product, with
    the lookup key moved to it. No subscription is touched."""
    former = gateway.retrieve_price(item.stripe_price_id) if item.stripe_price_id else None
    item.price_cents = price_cents
    created = _create_price(
        gateway,
        item,
        product_id=former["product"] if former else None,
        superseding=former["id"] if former else None,
    )
    catalog.set_stripe_price(session, item, created["id"])
    return _line(item, CREATED, created["id"], f"supersedes {former['id']}" if former else "")


def _create_price(
    gateway: StripeGateway, item: Plan | CreditPackage, *, product_id: str | None, superseding: str | None
) -> dict[str, Any]:
    kind = catalog.kind_of(item)
    key = catalog.lookup_key(item)
    if product_id is None:
        product_id = gateway.ensure_product(
            f"billhook_{kind}_{item.id}", name=item.name, metadata={"billhook_kind": kind, "billhook_id": item.id}
        )["id"]
    interval = item.interval if isinstance(item, Plan) else None
    # The same key for the same request: a push retried after a crash gets the Price it made.
    idempotency_key = f"billhook-price-{key}-{item.price_cents}-{item.currency}-{interval}-{superseding or 'new'}"
    return gateway.create_price(
        product_id=product_id,
        unit_amount=item.price_cents,
        currency=item.currency,
        interval=interval,
        lookup_key=key,
        nickname=item.name,
        metadata={"billhook_kind": kind, "billhook_id": item.id},
        idempotency_key=idempotency_key,
        transfer_lookup_key=superseding is not None,
    )


def _mismatch(item: Plan | CreditPackage, price: dict[str, Any]) -> str | None:
    recurring = price.get("recurring") or {}
    at_stripe = (price.get("unit_amount"), price.get("currency"), recurring.get("interval"))
    wanted = (item.price_cents, item.currency, item.interval if isinstance(item, Plan) else None)
    if at_stripe == wanted:
        return None
    return f"Price {price['id']} is {_money(*at_stripe)}, the catalog says {_money(*wanted)}"


def _money(amount: int | None, currency: str | None, interval: str | None) -> str:
    return f"{amount} {currency}" + (f"/{interval}" if interval else " once")


def _line(item: Plan | CreditPackage, action: str, price_id: str | None = None, detail: str = "") -> Line:
    return Line(catalog.kind_of(item), item.id, catalog.lookup_key(item), action, price_id, detail)
