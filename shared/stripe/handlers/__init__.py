"""Stripe event handlers, on the current API shapes: billing periods on
`items.data[].current_period_*`, an invoice's subscription on `parent.subscription_details`.

One module per kind of Stripe object; importing this package registers every handler.
"""

from shared.stripe.handlers import (  # noqa: F401
    action_required,
    checkout,
    disputes,
    invoices,
    refunds,
    subscriptions,
    trials,
)
