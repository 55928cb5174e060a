"""A stand-in for api.stripe.com: answers in Stripe's published object shapes (the fixtures in
tests/fixtures/stripe/objects.json, through tests/factories/stripe_events.py), replays a response
for a repeated Idempotency-Key the way Stripe does, and records every request.

Products and Prices behave as Stripe documents them: a Product may be created with an id of the
caller's choosing (once), a Price is immutable, and a `lookup_key` is held by at most one active
Price; creating another Price with that key fails unless `transfer_lookup_key=true` moves it."""

from __future__ import annotations

import threading

from tests.factories import stripe_events as se
from tests.fakes.http import FakeServer, Recorded

CARD_DECLINED = {
    "error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
    }
}
API_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


def resource_missing(kind: str, object_id: str) -> dict:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": f"No such {kind}: '{object_id}'",
        }
    }


def _metadata(form: dict, prefix: str = "metadata") -> dict:
    """`metadata[account_id]=a` (or `subscription_data[metadata][plan_id]=b` with that prefix) as a dict."""
    start = f"{prefix}["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start) and "[" not in k[len(start) :]}


class FakeStripe(FakeServer):
    def __init__(self):
        super().__init__()
        self.subscriptions: dict[str, dict] = {}
        self._replies: dict[str, tuple[int, object]] = {}
        self._replay_lock = threading.Lock()
        self.route("POST", "/v1/customers")(self._idempotent(self._create_customer))
        self.route("POST", "/v1/checkout/sessions")(self._idempotent(self._create_checkout_session))
        self.checkout_sessions: dict[str, dict] = {}
        self.route("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)")(self._retrieve_checkout_session)
        self.route("GET", "/v1/checkout/sessions")(self._list_checkout_sessions)
        self.route("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire")(self._expire_checkout_session)
        self.route("POST", "/v1/billing_portal/sessions")(self._idempotent(self._create_portal_session))
        self.route("GET", r"/v1/subscriptions/(?P<id>[^/]+)")(self._retrieve_subscription)
        self.route("POST", r"/v1/subscriptions/(?P<id>[^/]+)")(self._idempotent(self._update_subscription))
        self.route("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)")(self._cancel_subscription)
        self.charges: dict[str, int] = {}  # PaymentIntent or Charge id -> amount, refundable
        self.refunds: list[dict] = []
        self.route("POST", "/v1/refunds")(self._idempotent(self._create_refund))
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.route("GET", r"/v1/products/(?P<id>[^/]+)")(self._retrieve_product)
        self.route("POST", "/v1/products")(self._idempotent(self._create_product))
        self.route("GET", "/v1/prices")(self._list_prices)
        self.route("GET", r"/v1/prices/(?P<id>[^/]+)")(self._retrieve_price)
        self.route("POST", "/v1/prices")(self._idempotent(self._create_price))

    def add_subscription(self, *, subscription_id: str, customer: str, price_id: str, status: str = "active") -> dict:
        obj = se.subscription(
            subscription_id=subscription_id,
            customer=customer,
            price_id=price_id,
            status=status,
            period_start=1_790_000_000,
            period_end=1_792_592_000,
        )
        self.subscriptions[subscription_id] = obj
        return obj

    def _idempotent(self, fn):
        def answer(request: Recorded, match):
            key = request.header("Idempotency-Key")
            with self._replay_lock:
                if key and key in self._replies:
                    return self._replies[key]
                reply = fn(request, match)
                if key:
                    self._replies[key] = reply
                return reply

        return answer

    def _create_customer(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("customer")
        obj.update(id=se.unique("cus"), email=form.get("email"), name=form.get("name"), metadata=_metadata(form))
        return 200, obj

    def _create_checkout_session(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("checkout.session")
        session_id = se.unique("cs_test")
        obj.update(
            id=session_id,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            mode=form.get("mode"),
            customer=form.get("customer"),
            client_reference_id=form.get("client_reference_id"),
            metadata=_metadata(form),
            success_url=form.get("success_url"),
            cancel_url=form.get("cancel_url"),
            status="open",
            payment_status="unpaid",
            subscription=None,
            payment_intent=None,
        )
        self.checkout_sessions[session_id] = obj
        return 200, obj

    def complete_checkout(self, session_id: str, *, subscription_id: str | None = None) -> dict:
        """The buyer paid: the session as Stripe shows it afterwards (and sends in its webhook)."""
        obj = self.checkout_sessions[session_id]
        obj.update(status="complete", payment_status="paid")
        if obj["mode"] == "subscription":
            obj["subscription"] = subscription_id or se.unique("sub")
        return obj

    def _list_checkout_sessions(self, request: Recorded, _match):
        customer, status = request.query.get("customer"), request.query.get("status")
        data = [
            obj
            for obj in self.checkout_sessions.values()
            if (customer is None or obj["customer"] == customer) and (status is None or obj["status"] == status)
        ]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/checkout/sessions"}

    def _expire_checkout_session(self, _request: Recorded, match):
        obj = self.checkout_sessions.get(match["id"])
        if obj is None:
            return 404, resource_missing("checkout.session", match["id"])
        if obj["status"] != "open":
            return 400, {"error": {"type": "invalid_request_error", "message": "Only open sessions can be expired."}}
        obj.update(status="expired", url=None)
        return 200, obj

    def _retrieve_checkout_session(self, _request: Recorded, match):
        obj = self.checkout_sessions.get(match["id"])
        if obj is None:
            return 404, resource_missing("checkout.session", match["id"])
        return 200, obj

    def _create_portal_session(self, request: Recorded, _match):
        form = request.form
        obj = se.fixture("billing_portal.session")
        obj.update(
            id=se.unique("bps"),
            customer=form.get("customer"),
            return_url=form.get("return_url"),
            url=f"https://billing.stripe.com/p/session/{se.unique('test')}",
            livemode=False,
            flow=None,
        )
        return 200, obj

    def _retrieve_subscription(self, _request: Recorded, match):
        obj = self.subscriptions.get(match["id"])
        if obj is None:
            return 404, resource_missing("subscription", match["id"])
        return 200, obj

    def _update_subscription(self, request: Recorded, match):
        obj = self.subscriptions.get(match["id"])
        if obj is None:
            return 404, resource_missing("subscription", match["id"])
        form = request.form
        item = obj["items"]["data"][0]
        if form.get("items[0][id]") == item["id"] and form.get("items[0][price]"):
            item["price"]["id"] = form["items[0][price]"]
        obj["metadata"] = {**obj.get("metadata", {}), **_metadata(form)}
        if "cancel_at_period_end" in form:
            if obj["status"] == "canceled":
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "A canceled subscription can only update its cancellation_details and metadata.",
                    }
                }
            obj["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        return 200, obj

    def _cancel_subscription(self, _request: Recorded, match):
        obj = self.subscriptions.get(match["id"])
        if obj is None:
            return 404, resource_missing("subscription", match["id"])
        if obj["status"] == "canceled":
            return 400, {"error": {"type": "invalid_request_error", "message": "The subscription is canceled."}}
        obj.update(status="canceled", canceled_at=1_790_000_100, ended_at=1_790_000_100, cancel_at_period_end=False)
        return 200, obj

    def add_charge(self, ref: str, amount: int) -> None:
        """A paid PaymentIntent (`pi_...`) or Charge (`ch_...`) the account holds."""
        self.charges[ref] = amount

    def _create_refund(self, request: Recorded, _match):
        form = request.form
        ref = form.get("payment_intent") or form.get("charge") or ""
        if ref not in self.charges:
            return 404, resource_missing("payment_intent" if "payment_intent" in form else "charge", ref)
        refund = {
            "id": se.unique("re"),
            "object": "refund",
            "amount": self.charges[ref],
            "currency": "usd",
            "payment_intent": form.get("payment_intent"),
            "charge": form.get("charge") or se.unique("ch"),
            "status": "succeeded",
            "reason": None,
            "metadata": {},
        }
        self.refunds.append(refund)
        return 200, refund

    # -- Products and Prices ----------------------------------------------------------------------

    def add_price(
        self, *, lookup_key: str | None, unit_amount: int, interval: str | None = "month", currency: str = "usd"
    ) -> dict:
        """A Price made in the dashboard (with its Product), as an account already holds it."""
        product = self._product(se.unique("prod"), name="Made in the dashboard", metadata={})
        return self._price(
            product=product["id"], unit_amount=unit_amount, currency=currency, interval=interval, lookup_key=lookup_key
        )

    def price_with_key(self, lookup_key: str) -> dict | None:
        return next((p for p in self.prices.values() if p["lookup_key"] == lookup_key and p["active"]), None)

    def _product(self, product_id: str, *, name: str, metadata: dict) -> dict:
        product = {
            "id": product_id,
            "object": "product",
            "active": True,
            "created": 1_790_000_000,
            "default_price": None,
            "description": None,
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": metadata,
            "name": name,
            "type": "service",
            "updated": 1_790_000_000,
            "url": None,
        }
        self.products[product_id] = product
        return product

    def _price(
        self, *, product: str, unit_amount: int, currency: str, interval: str | None, lookup_key: str | None, **extra
    ) -> dict:
        price_id = se.unique("price")
        recurring = None
        if interval:
            recurring = {
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        price = {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": 1_790_000_000,
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": extra.get("metadata", {}),
            "nickname": extra.get("nickname"),
            "product": product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
        self.prices[price_id] = price
        return price

    def _retrieve_product(self, _request: Recorded, match):
        product = self.products.get(match["id"])
        return (200, product) if product else (404, resource_missing("product", match["id"]))

    def _create_product(self, request: Recorded, _match):
        form = request.form
        product_id = form.get("id") or se.unique("prod")
        if product_id in self.products:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_already_exists",
                    "param": "id",
                    "message": "Product already exists.",
                }
            }
        return 200, self._product(product_id, name=form.get("name", ""), metadata=_metadata(form))

    def _list_prices(self, request: Recorded, _match):
        wanted = {v for k, v in request.query.items() if k.startswith("lookup_keys[")}
        active = request.query.get("active")
        data = [
            p
            for p in self.prices.values()
            if (not wanted or p["lookup_key"] in wanted) and (active is None or str(p["active"]).lower() == active)
        ]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/prices"}

    def _retrieve_price(self, _request: Recorded, match):
        price = self.prices.get(match["id"])
        return (200, price) if price else (404, resource_missing("price", match["id"]))

    def _create_price(self, request: Recorded, _match):
        form = request.form
        if form.get("product") not in self.products:
            return 400, resource_missing("product", form.get("product", ""))
        key = form.get("lookup_key") or None
        holder = self.price_with_key(key) if key else None
        if holder is not None:
            if form.get("transfer_lookup_key") != "true":
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "param": "lookup_key",
                        "message": f"A price (`{holder['id']}`) already uses that lookup key.",
                    }
                }
            holder["lookup_key"] = None
        price = self._price(
            product=form["product"],
            unit_amount=int(form["unit_amount"]),
            currency=form.get("currency", "usd"),
            interval=form.get("recurring[interval]"),
            lookup_key=key,
            nickname=form.get("nickname"),
            metadata=_metadata(form),
        )
        return 200, price
