"""Stripe: the client (a thin adapter over the SDK), checkout, the event handlers, reconciliation
with the Events API, and signing for development and tests."""
