"""Billhook as a sender: billing state changes told to the main app as signed webhooks.

events.py (what is sent, written in the change's transaction), endpoints.py (where to),
signing.py (Standard Webhooks), network.py (the one HTTP request, guarded against SSRF),
delivery.py (attempts, backoff, the sweep, ops)."""
