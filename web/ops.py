"""The ops page: what needs attention (duplicate subscriptions, manual payments waiting), recent
inbox events with status, attempts and error, and a replay button; the outgoing webhook
deliveries with a retry button (/ops/deliveries).

Server-rendered HTML behind the same basic auth as Flower (`FLOWER_BASIC_AUTH`, user:password,
several comma-separated). Unset, the page is off (503): it never runs unauthenticated.

A browser re-sends basic-auth credentials on any request to this origin, even one a foreign page
triggers, so the replay form carries a token (an HMAC of the user under billhook's JWT secret)
and a POST whose Origin is another site is refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from shared import event_ops, handoff, inbox
from shared.billing import duplicates, manual_payments
from shared.billing.checkout import NotFound
from shared.logs import log_line
from shared.models.events import EventStatus
from shared.models.outgoing import DeliveryStatus
from shared.outcome import Outcome
from shared.outgoing import delivery as outgoing_delivery
from web import fields
from web.context import billhook
from web.errors import ApiError, json_error

log = logging.getLogger("billhook.web.ops")

bp = Blueprint("ops", __name__, url_prefix="/ops")

REALM = "billhook ops"
PAGE_SIZE = 100


def _error(status: int, code: str, message: str) -> Response:
    """The house's JSON error, here too: a browser shows it as text, a script can read it."""
    response, _ = json_error(status, code, message)
    response.status_code = status
    return response


def _credentials() -> dict[str, str]:
    configured = billhook().settings.flower_basic_auth or ""
    pairs = (item.split(":", 1) for item in configured.split(",") if ":" in item)
    return {user.strip(): password for user, password in pairs if user.strip() and password}


def require_ops_auth(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        allowed = _credentials()
        if not allowed:
            return _error(503, "not_configured", "the ops page is off: set FLOWER_BASIC_AUTH=user:password")
        auth = request.authorization
        password = allowed.get(auth.username) if auth and auth.type == "basic" and auth.username else None
        if password is None or not hmac.compare_digest((auth.password or "").encode(), password.encode()):
            response = _error(401, "authentication_required", "authentication required")
            response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
            return response
        g.ops_user = auth.username
        return view(*args, **kwargs)

    return wrapper


def csrf_token(user: str) -> str:
    key = billhook().settings.jwt_secret.encode() or billhook().settings.service_token.encode()
    return hmac.new(key, f"ops-replay:{user}".encode(), hashlib.sha256).hexdigest()


def _refusal() -> Response | None:
    """Why this form POST is refused (cross-site, or without the page's token), or None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or f"{parts.scheme}://{parts.netloc}" != request.host_url.rstrip("/"):
            return _error(403, "cross_site_refused", "cross-site request refused")
    token = request.form.get("csrf_token", "")
    if not hmac.compare_digest(token.encode(), csrf_token(g.ops_user).encode()):
        return _error(403, "invalid_form_token", "missing or wrong form token; reload the page")
    return None


def _cursor(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    cursor = fields.parse_id(value)
    if cursor is None:
        raise ApiError(400, "invalid_parameter", f"before must be an event id: an integer from 1 to {fields.MAX_ID}")
    return cursor


@bp.get("")
@require_ops_auth
def index():
    status = request.args.get("status") or None
    if status is not None and status not in tuple(EventStatus):
        status = None
    before = _cursor(request.args.get("before"))  # None when absent: the newest page
    with billhook().session_factory() as session:
        # One row more than a page: whether an older page exists, without a count of the table.
        rows = event_ops.find_events(session, event_ops.EventFilter(status=status, before=before, limit=PAGE_SIZE + 1))
        counts = inbox.counts_by_status(session)
        pending_payments = manual_payments.pending(session)
        open_duplicates = duplicates.open_duplicates(session, limit=PAGE_SIZE)
    events = rows[:PAGE_SIZE]
    older = events[-1].id if len(rows) > PAGE_SIZE else None
    response = Response(
        render_template(
            "ops.html",
            events=events,
            counts=counts,
            statuses=tuple(EventStatus),
            status=status,
            before=before,
            older=older,
            token=csrf_token(g.ops_user),
            replayed=request.args.get("replayed"),
            notice=request.args.get("notice"),
            pending_payments=pending_payments,
            open_duplicates=open_duplicates,
            decided=request.args.get("decided"),
            now=datetime.now(UTC),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return response


@bp.post("/events/<int:event_pk>/replay")
@require_ops_auth
def replay(event_pk: int):
    if not fields.is_id(event_pk):  # routing's int takes any digits; the store's column does not
        raise ApiError(400, "invalid_event_id", f"the event id must be an integer from 1 to {fields.MAX_ID}")
    refused = _refusal()
    if refused is not None:
        return refused
    ext = billhook()
    with ext.session_factory.begin() as session:
        requeued = event_ops.reset_for_replay(session, event_pk, at=datetime.now(UTC))
    notice = "replayed" if requeued else "not_replayable"
    if requeued:
        try:
            ext.enqueue(event_pk)
        except Exception as exc:  # noqa: BLE001 - the store holds the replay: the sweeper queues it
            notice = "queued_for_sweeper"
            log_line(log, "ops replay enqueue failed", level=logging.WARNING, event=event_pk, error=type(exc).__name__)
    log_line(log, "ops replay", user=g.ops_user, event=event_pk, outcome=notice)
    return redirect(url_for("ops.index", replayed=event_pk, notice=notice), code=303)


# -- outgoing webhook deliveries --------------------------------------------------------------


@bp.get("/deliveries")
@require_ops_auth
def deliveries():
    failed_only = request.args.get("status") == DeliveryStatus.FAILED
    with billhook().session_factory() as session:
        rows = outgoing_delivery.list_deliveries(
            session, status=DeliveryStatus.FAILED if failed_only else None, limit=PAGE_SIZE
        )
    response = Response(
        render_template(
            "ops_deliveries.html",
            deliveries=rows,
            failed_only=failed_only,
            token=csrf_token(g.ops_user),
            retried=request.args.get("retried"),
            notice=request.args.get("notice"),
            now=datetime.now(UTC),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return response


@bp.post("/deliveries/<int:delivery_id>/retry")
@require_ops_auth
def retry_delivery(delivery_id: int):
    refused = _refusal()
    if refused is not None:
        return refused
    ext = billhook()
    with ext.session_factory.begin() as session:
        retried = outgoing_delivery.retry(session, delivery_id, at=datetime.now(UTC))
    notice = "retried" if retried else "not_retryable"
    if retried:
        handoff.hand_over(ext.enqueue_delivery, [delivery_id], what="delivery")  # else the sweep has it
    log_line(log, "ops delivery retry", user=g.ops_user, delivery=delivery_id, outcome=notice)
    return redirect(url_for("ops.deliveries", retried=delivery_id, notice=notice), code=303)


@bp.post("/manual-payments/<payment_ref>/<any(approve, reject):action>")
@require_ops_auth
def decide_manual_payment(payment_ref: str, action: str):
    """Approve or reject a pending manual payment, with the replay button's protection; a second
    decision (here or from the CLI) finds it decided and changes nothing."""
    refused = _refusal()
    if refused is not None:
        return refused
    reason = (request.form.get("reason") or "").strip()[: manual_payments.MAX_REASON] or None
    if reason is not None and not fields.is_text(reason, manual_payments.MAX_REASON):
        raise ApiError(400, "invalid_field", "the reason holds a control character or lone surrogate")
    if not fields.is_identifier(payment_ref, 100):  # no payment has such an id
        return redirect(url_for("ops.index", notice="unknown_payment"), code=303)
    ext = billhook()
    outcome = Outcome()
    try:
        with ext.session_factory.begin() as session:
            decision = manual_payments.decide(
                session,
                outcome,
                payment_ref[:100],
                approve=action == "approve",
                actor=f"ops:{g.ops_user}",
                reason=reason,
                at=datetime.now(UTC),
            )
        notice = f"{action}d" if decision.decided_now else "already_decided"
    except NotFound:
        notice = "unknown_payment"
    handoff.after_commit(outcome, email=ext.enqueue_email, delivery=ext.enqueue_delivery)
    log_line(log, "ops manual payment", user=g.ops_user, payment=payment_ref[:100], outcome=notice)
    return redirect(url_for("ops.index", decided=payment_ref[:100], notice=notice), code=303)
