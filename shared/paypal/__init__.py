"""PayPal: the REST client, webhook verification, orders and subscriptions, checkout and the
event handlers."""
