"""PayPal event handlers, on the documented webhook shapes: Orders v2 (`resource` is an order or a
capture/refund), Subscriptions v1 (`resource` is a subscription, or a sale for its payments).

Accounts and items come from billhook's custom_id (shared.paypal.orders). Event order is the
event's `create_time` (the inbox's `event_created_at`): the subscription high-water mark.
Handlers never call PayPal: capturing an approved order is the `billhook.paypal_capture_order`
task's job (shared.paypal.orders.capture_approved_order).

Emails go through shared.billing.notifications, as for Stripe: queued in the handler's transaction under
provider-neutral keys (one receipt per order or sale, one activation per subscription, one refund
email per refunded level), published by the worker after the commit. Lock order, as everywhere:
account, then subscription, then payment (shared.billing.accounts.ensure_account).
"""

from shared.paypal.handlers import disputes, orders, subscriptions  # noqa: F401
