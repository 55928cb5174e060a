"""Stripe checkout for the frontend: Checkout Sessions for plans and credit packages, plan changes
on a live subscription, and the billing portal.

Unlike the domain functions that take a session, these open short transactions of their own:
a provider call may take seconds, and no transaction (on SQLite: no write lock) is held across
one. Reads happen first, then the provider call, then a short write to remember what it created.
Credits are never granted here: the signed webhook does that, exactly once. The refusals, return
URLs and buyer both providers' checkouts share are in shared/billing/checkout.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from shared import inbox, processing
from shared.billing.accounts import link_stripe_customer
from shared.billing.checkout import (
    Buyer,
    LiveSubscription,
    NoCustomer,
    NotFound,
    NotPurchasable,
    ReturnUrls,
    SubscriptionConflict,
    load_buyer,
)
from shared.billing.subscriptions import LIVE_STATUSES
from shared.config import Settings
from shared.credentials import active_provider
from shared.errors import NotConfigured, ProviderError
from shared.models import Account, CreditPackage, Plan
from shared.stripe.client import API_VERSION, CheckoutOptions, StripeGateway
from shared.stripe.handlers.trials import TRIAL_DAYS_KEY

PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
DEFAULT_PRORATION = "create_prorations"
COMPLETED = "checkout.session.completed"
BILLING_ADDRESS_COLLECTION = ("auto", "required")


@dataclass(frozen=True)
class SyncedCheckout:
    """The return page's answer, and what the caller enqueues after it (the commits are done)."""

    answer: dict
    emails: tuple[int, ...] = ()
    deliveries: tuple[int, ...] = ()
    retry_event: int | None = None


class StripeCheckout:
    def __init__(self, session_factory: sessionmaker[Session], settings: Settings):
        self._session_factory = session_factory
        self._settings = settings
        self.urls = ReturnUrls.for_frontend(settings.frontend_url)

    # -- plans ----------------------------------------------------------------------------------

    def subscribe(self, account_id: str, plan_id: str, request_key: str) -> dict:
        """A Checkout Session for the plan; on a live Stripe subscription, a plan change instead."""
        with self._session_factory() as session:
            plan = _purchasable_plan(session, plan_id)
            buyer = load_buyer(session, account_id)
            gateway, config = self._gateway(session)
        live = buyer.live_subscription
        if live is not None:
            changed = self._change_plan(gateway, config, buyer, live, plan, request_key)
            if changed is not None:
                return changed
        customer_id = self._customer(gateway, buyer)
        reused = _reuse_open_checkout(gateway, customer_id, account_id, plan)
        if reused is not None:
            return reused
        metadata = {"account_id": account_id, "plan_id": plan.id}
        if plan.trial_days:
            # The handlers read it to tell the trial's free first invoice from a paid one.
            metadata[TRIAL_DAYS_KEY] = str(plan.trial_days)
        checkout = gateway.create_checkout_session(
            mode="subscription",
            price_id=plan.stripe_price_id,
            customer_id=customer_id,
            client_reference_id=account_id,
            metadata=metadata,
            success_url=self.urls.success,
            cancel_url=self.urls.cancel,
            idempotency_key=f"billhook:checkout:{account_id}:plan:{plan.id}:{request_key}",
            trial_period_days=plan.trial_days or 0,
            options=checkout_options(config),
        )
        return {"action": "checkout", "checkout_url": checkout["url"], "session_id": checkout["id"]}

    def _change_plan(
        self,
        gateway: StripeGateway,
        config: dict,
        buyer: Buyer,
        live: LiveSubscription,
        plan: Plan,
        request_key: str,
    ) -> dict | None:
        """Move the live subscription to the plan's price. None when Stripe says the subscription
        is no longer live (our copy lags its webhooks): the caller starts a new checkout."""
        if live.provider != "stripe":
            raise SubscriptionConflict(
                f"the account's subscription is billed through {live.provider}; change the plan there"
            )
        if live.plan_id == plan.id:
            raise SubscriptionConflict(f"the account is already subscribed to plan {plan.id!r}")
        remote = gateway.retrieve_subscription(live.provider_subscription_id)
        if remote.get("status") not in LIVE_STATUSES:
            return None
        items = (remote.get("items") or {}).get("data") or []
        if not items:
            raise ProviderError("stripe", f"subscription {live.provider_subscription_id} has no items")
        item = items[0]
        if (item.get("price") or {}).get("id") == plan.stripe_price_id:
            raise SubscriptionConflict(f"the account is already subscribed to plan {plan.id!r}")
        proration = _proration_behavior(config)
        updated = gateway.change_subscription_price(
            live.provider_subscription_id,
            item_id=item["id"],
            price_id=plan.stripe_price_id,
            proration_behavior=proration,
            metadata={"account_id": buyer.account_id, "plan_id": plan.id},
            idempotency_key=f"billhook:plan-change:{live.provider_subscription_id}:{plan.id}:{request_key}",
        )
        return {
            "action": "plan_changed",
            "subscription_id": live.provider_subscription_id,
            "from_plan_id": live.plan_id,
            "plan_id": plan.id,
            "proration_behavior": proration,
            "status": updated.get("status"),
        }

    # -- credit packages ------------------------------------------------------------------------

    def buy_credits(self, account_id: str, package_id: str, request_key: str) -> dict:
        with self._session_factory() as session:
            package = _purchasable_package(session, package_id)
            buyer = load_buyer(session, account_id)
            gateway, config = self._gateway(session)
        customer_id = self._customer(gateway, buyer)
        checkout = gateway.create_checkout_session(
            options=checkout_options(config),
            mode="payment",
            price_id=package.stripe_price_id,
            customer_id=customer_id,
            client_reference_id=account_id,
            # What the session is for, as the catalog says at creation: the webhook checks the
            # payment against it, so a later price change does not fail sessions in flight.
            metadata={
                "account_id": account_id,
                "package_id": package.id,
                "price_cents": str(package.price_cents),
                "currency": package.currency,
            },
            success_url=self.urls.success,
            cancel_url=self.urls.cancel,
            idempotency_key=f"billhook:checkout:{account_id}:package:{package.id}:{request_key}",
        )
        return {"checkout_url": checkout["url"], "session_id": checkout["id"], "credits": package.credits}

    # -- the return page ----------------------------------------------------------------------------

    def sync_checkout(self, account_id: str, session_id: str) -> SyncedCheckout:
        """Apply a completed Checkout Session the success page names, before its webhook arrives.

        The session retrieved from Stripe is stored in the inbox as a `checkout.session.completed`
        of billhook's own id (one per session: a reload finds it) and run through the same handler
        now, so the user sees the plan at once. The handler's grant and email keys are the
        session's and subscription's, so the real webhook finds them taken and changes nothing;
        the synthetic event is dated at the session's creation, before Stripe's, so it never
        outranks a later real state. A session that is not the caller's is not found."""
        with self._session_factory() as session:
            gateway, _ = self._gateway(session)
        try:
            checkout = gateway.retrieve_checkout_session(session_id)
        except ProviderError as exc:
            if exc.status == 404:  # an id Stripe never issued (or another Stripe account's)
                raise NotFound(f"no checkout session {session_id!r} for this account") from exc
            raise
        owner = (checkout.get("metadata") or {}).get("account_id") or checkout.get("client_reference_id")
        if owner != account_id:
            raise NotFound(f"no checkout session {session_id!r} for this account")
        answer = {
            "session_id": checkout.get("id"),
            "status": checkout.get("status"),
            "payment_status": checkout.get("payment_status"),
            "mode": checkout.get("mode"),
        }
        if checkout.get("status") != "complete":
            return SyncedCheckout({**answer, "applied": False})
        now = datetime.now(UTC)
        created = checkout.get("created")
        event_id = f"billhook_sync_{checkout['id']}"
        with self._session_factory.begin() as session:
            stored = inbox.record_event(
                session,
                provider="stripe",
                event_id=event_id,
                type=COMPLETED,
                payload={
                    "id": event_id,
                    "object": "event",
                    "type": COMPLETED,
                    "api_version": API_VERSION,
                    "created": created,
                    "livemode": bool(checkout.get("livemode")),
                    "data": {"object": checkout},
                },
                event_created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else now,
                handled=True,
                at=now,
            )
        try:
            result = processing.process_event(self._session_factory, stored.id, clock=lambda: datetime.now(UTC))
        except Exception:  # noqa: BLE001 - the row stays received: the worker retries it the usual way
            return SyncedCheckout({**answer, "applied": False}, retry_event=stored.id)
        applied = result.outcome in (processing.DONE, processing.ALREADY_DONE)
        return SyncedCheckout({**answer, "applied": applied}, emails=result.emails, deliveries=result.deliveries)

    # -- cancel and resume ------------------------------------------------------------------------

    def cancel_subscription(self, account_id: str, request_key: str) -> dict:
        """Ask Stripe to cancel the live subscription at the period's end. The store changes when
        Stripe's customer.subscription.updated arrives; the answer is what Stripe said."""
        gateway, live = self._live_stripe_subscription(account_id)
        updated = gateway.cancel_subscription_at_period_end(
            live.provider_subscription_id,
            idempotency_key=f"billhook:cancel:{live.provider_subscription_id}:{request_key}",
        )
        return _subscription_answer(updated)

    def resume_subscription(self, account_id: str, request_key: str) -> dict:
        """Undo a cancellation scheduled for the period's end (the subscription is still live)."""
        gateway, live = self._live_stripe_subscription(account_id)
        updated = gateway.resume_subscription(
            live.provider_subscription_id,
            idempotency_key=f"billhook:resume:{live.provider_subscription_id}:{request_key}",
        )
        return _subscription_answer(updated)

    def _live_stripe_subscription(self, account_id: str) -> tuple[StripeGateway, LiveSubscription]:
        with self._session_factory() as session:
            buyer = load_buyer(session, account_id)
            live = buyer.live_subscription
            if live is None:
                raise NotFound("the account has no live subscription")
            if live.provider != "stripe":
                raise SubscriptionConflict(
                    f"the account's subscription is billed through {live.provider}; manage it there"
                )
            gateway, _ = self._gateway(session)
        return gateway, live

    # -- billing portal -------------------------------------------------------------------------

    def billing_portal(self, account_id: str, request_key: str) -> dict:
        with self._session_factory() as session:
            buyer = load_buyer(session, account_id)
            if not buyer.customer_id:
                raise NoCustomer("the account has no Stripe customer yet; buy a plan or credits first")
            gateway, _ = self._gateway(session)
        portal = gateway.create_portal_session(
            customer_id=buyer.customer_id,
            return_url=self.urls.portal_return,
            idempotency_key=f"billhook:portal:{account_id}:{request_key}",
        )
        return {"portal_url": portal["url"]}

    # -- helpers --------------------------------------------------------------------------------

    def _gateway(self, session: Session) -> tuple[StripeGateway, dict]:
        provider = active_provider(session, "stripe")
        gateway = StripeGateway.from_provider(provider, self._settings)
        return gateway, dict(provider.config or {})

    def _customer(self, gateway: StripeGateway, buyer: Buyer) -> str:
        """The account's Stripe customer, created once: the idempotency key makes concurrent first
        checkouts get the same customer from Stripe, and the account remembers it."""
        if buyer.customer_id:
            return buyer.customer_id
        customer = gateway.create_customer(
            account_id=buyer.account_id,
            email=buyer.email,
            name=buyer.name,
            idempotency_key=f"billhook:customer:{buyer.account_id}",
        )
        with self._session_factory.begin() as session:
            account = session.get(Account, buyer.account_id, populate_existing=True)
            link_stripe_customer(session, account, customer["id"])
            return account.stripe_customer_id or customer["id"]


def _purchasable_plan(session: Session, plan_id: str) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None or not plan.active:
        raise NotFound(f"no active plan {plan_id!r}")
    if not plan.stripe_price_id:
        raise NotPurchasable(f"plan {plan_id!r} has no Stripe price")
    return plan


def _purchasable_package(session: Session, package_id: str) -> CreditPackage:
    package = session.get(CreditPackage, package_id)
    if package is None or not package.active:
        raise NotFound(f"no active credit package {package_id!r}")
    if not package.stripe_price_id:
        raise NotPurchasable(f"credit package {package_id!r} has no Stripe price")
    return package


def _proration_behavior(config: dict) -> str:
    value = config.get("proration_behavior", DEFAULT_PRORATION)
    if value not in PRORATION_BEHAVIORS:
        raise NotConfigured(
            f"stripe config proration_behavior {value!r} is not one of {', '.join(PRORATION_BEHAVIORS)}"
        )
    return value


def _reuse_open_checkout(gateway: StripeGateway, customer_id: str, account_id: str, plan: Plan) -> dict | None:
    """No double subscription from two tabs: an open subscription Checkout for the same plan is
    returned as it is; one for another plan is expired at Stripe before a new one opens, so at
    most one can still be paid. Stripe keeps the list, so billhook stores none."""
    reused = None
    for open_session in gateway.open_checkout_sessions(customer_id):
        if open_session.get("mode") != "subscription":
            continue  # a credit purchase does not compete with a subscription
        meta = open_session.get("metadata") or {}
        if reused is None and meta.get("plan_id") == plan.id and meta.get("account_id") == account_id:
            reused = {"action": "checkout", "checkout_url": open_session["url"], "session_id": open_session["id"]}
        else:
            gateway.expire_checkout_session(open_session["id"])
    return reused


def checkout_options(config: dict) -> CheckoutOptions:
    """The Checkout options the stripe provider's config sets; a wrong value is NotConfigured (503)."""
    flags = {}
    for name in ("allow_promotion_codes", "automatic_tax", "tax_id_collection"):
        value = config.get(name, False)
        if not isinstance(value, bool):
            raise NotConfigured(f"stripe config {name} must be true or false, not {value!r}")
        flags[name] = value
    address = config.get("billing_address_collection")
    if address is not None and address not in BILLING_ADDRESS_COLLECTION:
        raise NotConfigured(
            f"stripe config billing_address_collection {address!r} is not one of "
            f"{', '.join(BILLING_ADDRESS_COLLECTION)}"
        )
    return CheckoutOptions(**flags, billing_address_collection=address)


def _subscription_answer(stripe_subscription: dict) -> dict:
    items = (stripe_subscription.get("items") or {}).get("data") or [{}]
    return {
        "subscription_id": stripe_subscription.get("id"),
        "status": stripe_subscription.get("status"),
        "cancel_at_period_end": bool(stripe_subscription.get("cancel_at_period_end")),
        "current_period_end": items[0].get("current_period_end"),
    }
