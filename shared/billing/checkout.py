"""What both providers' checkouts share: the refusals (answered as 4xx), where the buyer is sent
back, and what the store says about the buyer before any provider call."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.billing.subscriptions import LIVE_STATUSES, current_subscription
from shared.errors import BillhookError
from shared.models import Account, Subscription


class CheckoutRefused(BillhookError):
    """The request cannot be served as asked; web answers with a 4xx naming `code`."""

    code = "checkout_refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(CheckoutRefused):
    code = "not_found"


class NotPurchasable(CheckoutRefused):
    code = "not_purchasable"


class NoCustomer(CheckoutRefused):
    code = "no_stripe_customer"


class SubscriptionConflict(CheckoutRefused):
    code = "subscription_conflict"


class OrderNotApproved(CheckoutRefused):
    code = "order_not_approved"


@dataclass(frozen=True)
class ReturnUrls:
    """Where providers send the user back: always the configured frontend, never the request."""

    success: str
    cancel: str
    portal_return: str
    paypal_return: str

    @classmethod
    def for_frontend(cls, frontend_url: str) -> ReturnUrls:
        base = frontend_url.rstrip("/")
        return cls(
            success=f"{base}/billing/success?session_id={{CHECKOUT_SESSION_ID}}",
            cancel=f"{base}/billing/cancel",
            portal_return=f"{base}/billing",
            paypal_return=f"{base}/billing/paypal/return",
        )


@dataclass(frozen=True)
class LiveSubscription:
    provider: str
    provider_subscription_id: str
    plan_id: str | None


@dataclass(frozen=True)
class Buyer:
    """What the store says about the account, read before any provider call."""

    account_id: str
    email: str | None
    name: str | None
    customer_id: str | None
    live_subscription: LiveSubscription | None


def load_buyer(session: Session, account_id: str) -> Buyer:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    subscription: Subscription | None = current_subscription(session, account_id)
    live = None
    if subscription is not None and subscription.status in LIVE_STATUSES:
        live = LiveSubscription(subscription.provider, subscription.provider_subscription_id, subscription.plan_id)
    return Buyer(account.id, account.email, account.name, account.stripe_customer_id, live)
