"""The billing API the frontend calls, under /api/v1/billing/. JSON in, JSON out.

Catalog reads are public; everything else acts on the account the bearer token names. Provider
failures answer 502 naming the provider (504 when it did not answer in time); a 500 is a bug.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime

from flask import Blueprint, g, jsonify, request

from shared import handoff
from shared.billing import catalog
from shared.billing.account_summary import account_summary
from shared.billing.checkout import (
    CheckoutRefused,
    NoCustomer,
    NotFound,
    NotPurchasable,
    OrderNotApproved,
    SubscriptionConflict,
)
from shared.errors import NotConfigured, ProviderError, ProviderTimeout
from shared.logs import log_line
from shared.models import Account
from shared.paypal.checkout import PayPalCheckout
from shared.stripe.checkout import StripeCheckout
from web.auth import current_caller, require_account
from web.context import billhook
from web.errors import ApiError, json_error
from web.json import json_object
from web.metrics import note_request

log = logging.getLogger("billhook.web")

bp = Blueprint("billing_api", __name__, url_prefix="/api/v1/billing")

# The shapes the OpenAPI document states (web/openapi.py reads them from here).
ITEM_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
REQUEST_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_REFUSAL_STATUS = {
    NotFound: 404,
    NotPurchasable: 400,
    NoCustomer: 400,
    SubscriptionConflict: 409,
    OrderNotApproved: 409,
}


# -- catalog (public) -------------------------------------------------------------------------


@bp.get("/plans")
def list_plans():
    with billhook().session_factory() as session:
        plans = [
            {
                "id": p.id,
                "name": p.name,
                "price_cents": p.price_cents,
                "currency": p.currency,
                "interval": p.interval,
                "included_credits": p.included_credits,
                "providers": _providers(stripe=p.stripe_price_id, paypal=p.paypal_plan_id),
            }
            for p in catalog.active_plans(session)
        ]
    return jsonify({"plans": plans})


@bp.get("/credit-packages")
def list_credit_packages():
    with billhook().session_factory() as session:
        packages = [
            {
                "id": p.id,
                "name": p.name,
                "credits": p.credits,
                "price_cents": p.price_cents,
                "currency": p.currency,
                # PayPal orders are priced from the package itself, so it can always sell one.
                "providers": _providers(stripe=p.stripe_price_id, paypal=True),
            }
            for p in catalog.active_packages(session)
        ]
    return jsonify({"credit_packages": packages})


def _providers(**available) -> list[str]:
    return [name for name, value in available.items() if value]


# -- the caller's account ---------------------------------------------------------------------


@bp.get("/account")
@require_account
def get_account():
    account_id = current_caller().account_id
    with billhook().session_factory() as session:
        summary = account_summary(session, session.get(Account, account_id), now=datetime.now(UTC))
    # The frontend sees whether a Stripe customer exists, not its id, nor the ledger's internal keys.
    customer_id = summary.pop("stripe_customer_id")
    body = {
        **summary,
        "has_stripe_customer": bool(customer_id),
        "ledger": [{k: v for k, v in entry.items() if k != "key"} for entry in summary["ledger"]],
    }
    return jsonify(body)


# -- Stripe -----------------------------------------------------------------------------------


@bp.post("/stripe/checkout")
@require_account
def stripe_checkout():
    plan_id = _field(json_object(), "plan_id")
    result = _stripe().subscribe(current_caller().account_id, plan_id, _request_key())
    return jsonify(result)


@bp.post("/stripe/credit-checkout")
@require_account
def stripe_credit_checkout():
    package_id = _field(json_object(), "package_id")
    return jsonify(_stripe().buy_credits(current_caller().account_id, package_id, _request_key()))


@bp.post("/stripe/billing-portal")
@require_account
def stripe_billing_portal():
    return jsonify(_stripe().billing_portal(current_caller().account_id, _request_key()))


@bp.get("/stripe/checkout/<session_id>")
@require_account
def stripe_checkout_return(session_id: str):
    if not ITEM_ID.fullmatch(session_id):
        raise ApiError(400, "invalid_field", "session_id must be 1 to 100 of A-Z a-z 0-9 _ . : -")
    ext = billhook()
    synced = _stripe().sync_checkout(current_caller().account_id, session_id)
    # The sync's commit is done: publish what it queued (a broker failure leaves it to the sweepers).
    handoff.after_commit(synced, email=ext.enqueue_email, delivery=ext.enqueue_delivery)
    if synced.retry_event is not None:
        handoff.hand_over(ext.enqueue, [synced.retry_event], what="event")
    return jsonify(synced.answer)


@bp.post("/stripe/cancel-subscription")
@require_account
def stripe_cancel_subscription():
    # Only a cancellation at the period's end: the subscriber keeps what the period paid for.
    if json_object().get("at_period_end") is not True:
        raise ApiError(
            400, "invalid_field", "at_period_end must be true (a cancellation takes effect at the period's end)"
        )
    return jsonify(_stripe().cancel_subscription(current_caller().account_id, _request_key()))


@bp.post("/stripe/resume-subscription")
@require_account
def stripe_resume_subscription():
    return jsonify(_stripe().resume_subscription(current_caller().account_id, _request_key()))


def _stripe() -> StripeCheckout:
    ext = billhook()
    return StripeCheckout(ext.session_factory, ext.settings)


# -- PayPal -----------------------------------------------------------------------------------


@bp.post("/paypal/create-order")
@require_account
def paypal_create_order():
    package_id = _field(json_object(), "package_id")
    return jsonify(_paypal().create_order(current_caller().account_id, package_id, _request_key()))


@bp.post("/paypal/capture-order")
@require_account
def paypal_capture_order():
    order_id = _field(json_object(), "order_id")
    return jsonify(_paypal().capture_order(current_caller().account_id, order_id))


@bp.post("/paypal/create-subscription")
@require_account
def paypal_create_subscription():
    plan_id = _field(json_object(), "plan_id")
    return jsonify(_paypal().create_subscription(current_caller().account_id, plan_id, _request_key()))


@bp.post("/paypal/change-plan")
@require_account
def paypal_change_plan():
    plan_id = _field(json_object(), "plan_id")
    return jsonify(_paypal().change_plan(current_caller().account_id, plan_id, _request_key()))


@bp.post("/paypal/cancel-subscription")
@require_account
def paypal_cancel_subscription():
    return jsonify(_paypal().cancel_subscription(current_caller().account_id))


def _paypal() -> PayPalCheckout:
    ext = billhook()
    return PayPalCheckout(
        ext.session_factory, ext.settings, enqueue_email=ext.enqueue_email, enqueue_delivery=ext.enqueue_delivery
    )


# -- input ------------------------------------------------------------------------------------


def _field(body: dict, name: str) -> str:
    """A catalog or provider id from the body, as the OpenAPI document's ItemId describes it."""
    value = body.get(name)
    if not isinstance(value, str) or not ITEM_ID.fullmatch(value):
        raise ApiError(400, "invalid_field", f"{name} must be 1 to 100 of A-Z a-z 0-9 _ . : -")
    return value


def _request_key() -> str:
    """The client's Idempotency-Key (a retried click returns the same provider object), or a new
    one per request. Scoped to the account and the item in the provider's key."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return uuid.uuid4().hex
    if not REQUEST_KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 100 of A-Z a-z 0-9 _ . : -")
    return key


# -- errors and the request log ---------------------------------------------------------------


@bp.errorhandler(CheckoutRefused)
def _refused(exc: CheckoutRefused):
    return json_error(_REFUSAL_STATUS.get(type(exc), 400), exc.code, exc.message)


@bp.errorhandler(ProviderError)
def _provider_failed(exc: ProviderError):
    log_line(
        log,
        "provider call failed",
        level=logging.WARNING,
        provider=exc.provider,
        status=exc.status,
        retryable=exc.retryable,
        account=getattr(g.get("caller"), "account_id", None),
    )
    timed_out = isinstance(exc, ProviderTimeout)
    code = "provider_timeout" if timed_out else "provider_error"
    body = {"error": {"code": code, "provider": exc.provider, "message": str(exc)}}
    return jsonify(body), 504 if timed_out else 502


@bp.errorhandler(NotConfigured)
def _not_configured(exc: NotConfigured):
    return json_error(503, "not_configured", str(exc))


@bp.after_request
def _note_caller(response):
    """The caller goes on the request's one log line (web/metrics.py writes it)."""
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="billhook"'
    caller = g.get("caller")
    if caller is not None:
        note_request(account=caller.account_id)
    return response
