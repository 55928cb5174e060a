"""Manual payments (bank transfer, cheque, invoice) requested over HTTP; an operator decides them
(`billhook payments approve|reject`, or the ops page).

- `POST /api/v1/billing/manual-payments` (the signed-in user's bearer token):
  `{"plan_id" | "package_id", "method", "reference"}`, optional `Idempotency-Key` header.
- `GET /api/v1/billing/manual-payments/<id>`: the caller's own request, with its invoice.
- `POST /api/v1/internal/manual-payments` (billhook's service token, for the main app): the same
  with `account_id` and a required `idempotency_key`.

201 with the pending payment, its invoice number and payment instructions; 200 for a retry of the
same request (same key).
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, datetime

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from shared import handoff
from shared.billing import manual_payments, payments
from shared.billing.checkout import CheckoutRefused, NotFound, SubscriptionConflict
from shared.errors import NotConfigured
from shared.models import ManualPayment, Payment
from shared.outcome import Outcome
from web import fields
from web.auth import current_caller, require_account, require_static_token
from web.billing_api import ITEM_ID
from web.context import billhook
from web.errors import ApiError, json_error
from web.json import json_object
from web.metrics import note_request

bp = Blueprint("manual_payments", __name__)

_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
_STATUS = {NotFound: 404, SubscriptionConflict: 409, manual_payments.RequestKeyReused: 409}
MAX_ACCOUNT_ID = 64
MAX_PAYMENT_REF = 100


def require_service_token(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = billhook().settings.service_token
        if not token:
            raise ApiError(503, "not_configured", "no service token is configured (BILLHOOK_SERVICE_TOKEN)")
        require_static_token(token, what="service token")
        return view(*args, **kwargs)

    return wrapper


@bp.post("/api/v1/billing/manual-payments")
@require_account
def request_for_caller():
    caller = current_caller()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 150 of A-Z a-z 0-9 _ . : -")
    return _request(caller.account_id, json_object(), key or uuid.uuid4().hex, requested_by="user")


@bp.get("/api/v1/billing/manual-payments/<payment_ref>")
@require_account
def show_for_caller(payment_ref: str):
    caller = current_caller()
    if not fields.is_identifier(payment_ref, MAX_PAYMENT_REF):  # no such payment: none has such an id
        raise ApiError(404, "not_found", "no manual payment with this id")
    with billhook().session_factory() as session:
        payment = payments.find_payment(session, manual_payments.PROVIDER, payment_ref)
        if payment is None or payment.account_id != caller.account_id:
            raise ApiError(404, "not_found", f"no manual payment {payment_ref!r}")
        manual = session.get(ManualPayment, _manual_id(session, payment))
        return jsonify(_answer(session, payment, manual))


@bp.post("/api/v1/internal/manual-payments")
@require_service_token
def request_for_main_app():
    body = json_object()
    account_id = body.get("account_id")
    if not fields.is_identifier(account_id, MAX_ACCOUNT_ID):
        raise ApiError(
            400, "invalid_field", f"account_id must be 1 to {MAX_ACCOUNT_ID} printable chars with no spaces around them"
        )
    key = body.get("idempotency_key", request.headers.get("Idempotency-Key"))
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "idempotency_key is required: 1 to 150 of A-Z a-z 0-9 _ . : -")
    return _request(account_id, body, key, requested_by="main_app")


def _request(account_id: str, body: dict, key: str, *, requested_by: str):
    plan_id, package_id = _optional_id(body, "plan_id"), _optional_id(body, "package_id")
    if (plan_id is None) == (package_id is None):
        raise ApiError(400, "invalid_field", "give plan_id or package_id (one of them)")
    method = body.get("method")
    if method not in manual_payments.METHODS:
        raise ApiError(400, "invalid_field", f"method must be one of {', '.join(manual_payments.METHODS)}")
    reference = body.get("reference")
    if reference is not None and not fields.is_line(reference, manual_payments.MAX_REFERENCE):
        raise ApiError(
            400, "invalid_field", f"reference must be one line of at most {manual_payments.MAX_REFERENCE} chars"
        )
    note_request(account=account_id)
    ext = billhook()
    outcome = Outcome()
    with ext.session_factory.begin() as session:
        done = manual_payments.request_manual_payment(
            session,
            outcome,
            account_id=account_id,
            plan_id=plan_id,
            package_id=package_id,
            method=method,
            reference=reference.strip() if reference else None,
            request_key=f"{account_id}:{key}",
            requested_by=requested_by,
            at=datetime.now(UTC),
        )
        answer = {**_answer(session, done.payment, done.manual), "duplicate": not done.created}
    handoff.after_commit(outcome, email=ext.enqueue_email, delivery=ext.enqueue_delivery)
    return jsonify(answer), 201 if done.created else 200


def _answer(session, payment: Payment, manual: ManualPayment) -> dict:
    invoice = payments.invoice_for_payment(session, payment.id)
    return {
        "id": payment.provider_payment_id,
        "status": payment.status,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "plan_id": payment.plan_id,
        "package_id": payment.package_id,
        "method": manual.method,
        "reference": manual.reference,
        "requested_at": manual.created_at,
        "decided_at": manual.decided_at,
        "invoice": None
        if invoice is None
        else {"number": invoice.number, "status": invoice.status, "payment_instructions": invoice.notes},
    }


def _manual_id(session, payment: Payment) -> int:
    return session.scalars(select(ManualPayment.id).filter_by(payment_id=payment.id)).one()


def _optional_id(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not ITEM_ID.fullmatch(value):  # as the OpenAPI document says
        raise ApiError(400, "invalid_field", f"{name} must be 1 to 100 of A-Z a-z 0-9 _ . : -")
    return value


@bp.errorhandler(CheckoutRefused)
def _refused(exc: CheckoutRefused):
    return json_error(_STATUS.get(type(exc), 400), exc.code, exc.message)


@bp.errorhandler(NotConfigured)
def _not_configured(exc: NotConfigured):
    return json_error(503, "not_configured", str(exc))
