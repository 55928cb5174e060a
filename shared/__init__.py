"""billhook's domain: the store, the credit ledger, subscriptions and provider clients.

Imports neither Flask nor Celery: web/ and worker/ both build on it.
"""
