"""PayPal checkout for the frontend: an Orders v2 order (intent CAPTURE) for a credit package, its
capture when the buyer comes back, and a subscription for a plan's PayPal plan.

As in shared/stripe/checkout.py, no transaction is held across a PayPal call. A completed capture is
granted through `paypal_orders.grant_capture`, the function the PAYMENT.CAPTURE.COMPLETED handler
and the approved-order sweep use: one key per order, so capturing twice, or a capture and its
webhook, grant the credits once. Every capture of an order carries the order's one
PayPal-Request-Id (`paypal_orders.capture_request_id`), so PayPal captures it once too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from shared import handoff
from shared.billing import ledger
from shared.billing.checkout import (
    LiveSubscription,
    NotFound,
    NotPurchasable,
    OrderNotApproved,
    ReturnUrls,
    SubscriptionConflict,
    load_buyer,
)
from shared.config import Settings
from shared.errors import PermanentError, ProviderError
from shared.models import CreditPackage, Plan
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from shared.paypal.client import PROVIDER, PayPalError, PayPalGateway, approve_url

NOT_APPROVED = "ORDER_NOT_APPROVED"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PayPalCheckout:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        enqueue_email: Callable[[int], None] | None = None,
        enqueue_delivery: Callable[[int], None] | None = None,
    ):
        self._session_factory = session_factory
        self._settings = settings
        self._clock = clock
        # Publishes the emails a capture queued, after its commit (None: the outbox sweep does).
        self._enqueue_email = enqueue_email
        self._enqueue_delivery = enqueue_delivery  # the outgoing deliveries likewise
        self.urls = ReturnUrls.for_frontend(settings.frontend_url)

    # -- credit packages: order, then capture ---------------------------------------------------

    def create_order(self, account_id: str, package_id: str, request_key: str) -> dict:
        with self._session_factory() as session:
            package = session.get(CreditPackage, package_id)
            if package is None or not package.active:
                raise NotFound(f"no active credit package {package_id!r}")
            client = PayPalGateway.from_store(session, self._settings)
        order = client.create_order(
            amount_cents=package.price_cents,
            currency=package.currency,
            custom_id=_custom_id(paypal_orders.order_custom_id, account_id, package.id),
            description=f"{package.name} credit package ({package.credits} credits)",
            return_url=self.urls.paypal_return,
            cancel_url=self.urls.cancel,
            request_id=_request_id("order", account_id, package.id, request_key),
        )
        return {"order_id": order["id"], "approve_url": approve_url(order), "status": order.get("status")}

    def capture_order(self, account_id: str, order_id: str) -> dict:
        """Capture the caller's approved order and grant its credits (once, whoever grants first).
        An order that is not the caller's is answered as unknown."""
        with self._session_factory() as session:
            client = PayPalGateway.from_store(session, self._settings)
        order = self._callers_order(client, account_id, order_id)
        if order.get("status") != paypal_orders.COMPLETED:
            order = self._capture(client, order_id)
        capture = paypal_orders.CaptureResult.from_order(order)
        outcome = Outcome()
        with self._session_factory.begin() as session:
            grant = paypal_orders.grant_capture(session, outcome, capture, at=self._clock())
            balance = ledger.balance(session, account_id)
        # The receipt (or failure) has committed: publish it.
        if self._enqueue_email is not None:
            handoff.hand_over(self._enqueue_email, outcome.emails, what="email")
        if self._enqueue_delivery is not None:
            handoff.hand_over(self._enqueue_delivery, outcome.deliveries, what="delivery")
        if capture.status in paypal_orders.FAILED_CAPTURE_STATUSES:
            reason = f" ({capture.failure_reason})" if capture.failure_reason else ""
            raise ProviderError(PROVIDER, f"PayPal {capture.status.lower()} the capture{reason}", status=422)
        return {
            "order_id": order_id,
            "capture_id": capture.capture_id,
            "status": capture.status,
            "credits_granted": grant.credits_granted_now,
            "balance": balance,
        }

    def _callers_order(self, client: PayPalGateway, account_id: str, order_id: str) -> dict:
        try:
            order = client.get_order(order_id)
        except PayPalError as exc:
            if exc.status == 404:
                raise NotFound(f"no PayPal order {order_id!r}") from exc
            raise
        unit = (order.get("purchase_units") or [{}])[0] or {}
        try:
            owner, package_id = paypal_orders.parse_custom_id(unit.get("custom_id"))
        except PermanentError as exc:
            raise NotFound(f"no PayPal order {order_id!r}") from exc
        if owner != account_id:
            raise NotFound(f"no PayPal order {order_id!r}")
        with self._session_factory() as session:
            if session.get(CreditPackage, package_id) is None:
                raise NotFound(f"PayPal order {order_id!r} is for an unknown credit package")
        return order

    def _capture(self, client: PayPalGateway, order_id: str) -> dict:
        try:
            return client.capture_order(order_id, request_id=paypal_orders.capture_request_id(order_id))
        except PayPalError as exc:
            if exc.issue == paypal_orders.ALREADY_CAPTURED:
                # Captured under another request id (not billhook's): the order tells the result.
                return client.get_order(order_id)
            if exc.issue == NOT_APPROVED:
                raise OrderNotApproved(f"the buyer has not approved PayPal order {order_id!r} yet") from exc
            raise

    # -- plans ----------------------------------------------------------------------------------

    def create_subscription(self, account_id: str, plan_id: str, request_key: str) -> dict:
        with self._session_factory() as session:
            plan = session.get(Plan, plan_id)
            if plan is None or not plan.active:
                raise NotFound(f"no active plan {plan_id!r}")
            if not plan.paypal_plan_id:
                raise NotPurchasable(f"plan {plan_id!r} has no PayPal plan")
            buyer = load_buyer(session, account_id)
            client = PayPalGateway.from_store(session, self._settings)
        live = buyer.live_subscription
        if live is not None:
            raise SubscriptionConflict(
                f"the account already has a live {live.provider} subscription; change or cancel that one"
            )
        subscription = client.create_subscription(
            plan_id=plan.paypal_plan_id,
            custom_id=_custom_id(paypal_orders.subscription_custom_id, account_id, plan.id),
            return_url=self.urls.paypal_return,
            cancel_url=self.urls.cancel,
            request_id=_request_id("subscription", account_id, plan.id, request_key),
            email=buyer.email,
        )
        return {
            "subscription_id": subscription["id"],
            "approve_url": approve_url(subscription),
            "status": subscription.get("status"),
        }

    # -- the live PayPal subscription: change plan, cancel ----------------------------------------

    def change_plan(self, account_id: str, plan_id: str, request_key: str) -> dict:
        """Ask PayPal to revise the caller's live subscription to another plan. Nothing changes
        here until BILLING.SUBSCRIPTION.UPDATED arrives: the buyer may never approve."""
        with self._session_factory() as session:
            plan = session.get(Plan, plan_id)
            if plan is None or not plan.active:
                raise NotFound(f"no active plan {plan_id!r}")
            if not plan.paypal_plan_id:
                raise NotPurchasable(f"plan {plan_id!r} has no PayPal plan")
            live = self._live_paypal_subscription(session, account_id)
            client = PayPalGateway.from_store(session, self._settings)
        if live.plan_id == plan.id:
            raise SubscriptionConflict(f"the subscription is already on plan {plan_id!r}")
        revised = client.revise_subscription(
            live.provider_subscription_id,
            plan_id=plan.paypal_plan_id,
            return_url=self.urls.paypal_return,
            cancel_url=self.urls.cancel,
            request_id=_request_id("revise", account_id, plan.id, request_key),
        )
        return {
            "subscription_id": live.provider_subscription_id,
            "plan_id": plan.id,
            "approve_url": approve_url(revised),
        }

    def cancel_subscription(self, account_id: str) -> dict:
        """Ask PayPal to cancel the caller's live subscription; BILLING.SUBSCRIPTION.CANCELLED
        applies it."""
        with self._session_factory() as session:
            live = self._live_paypal_subscription(session, account_id)
            client = PayPalGateway.from_store(session, self._settings)
        client.cancel_subscription(live.provider_subscription_id, reason="Cancelled by the subscriber")
        return {"subscription_id": live.provider_subscription_id, "status": "cancel_requested"}

    @staticmethod
    def _live_paypal_subscription(session: Session, account_id: str) -> LiveSubscription:
        live = load_buyer(session, account_id).live_subscription
        if live is None or live.provider != PROVIDER:
            raise NotFound("the account has no live PayPal subscription")
        return live


def _custom_id(build: Callable[[str, str], str], account_id: str, item_id: str) -> str:
    try:
        return build(account_id, item_id)
    except ValueError as exc:
        raise NotPurchasable(f"cannot sell {item_id!r} through PayPal to this account: {exc}") from exc


def _request_id(kind: str, account_id: str, item_id: str, request_key: str) -> str:
    """A PayPal-Request-Id (at most 108 chars) scoped to the account, the item and the request."""
    digest = hashlib.sha256(f"{account_id}\0{item_id}\0{request_key}".encode()).hexdigest()[:48]
    return f"billhook-{kind}-{digest}"
