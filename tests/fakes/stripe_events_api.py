"""A local stand-in for Stripe's Events API (what reconciliation pages through)."""

from __future__ import annotations

from tests.fakes.http import Recorded
from tests.fakes.stripe_api import FakeStripe


class FakeStripeEvents(FakeStripe):
    """FakeStripe plus GET /v1/events: newest first, `types[]` and `created[gte]` filters,
    `limit` and `starting_after` paging, in Stripe's list envelope."""

    def __init__(self):
        super().__init__()
        self.events: list[dict] = []
        self.route("GET", "/v1/events")(self._list_events)

    def _list_events(self, request: Recorded, _match):
        query = request.query
        types = {v for k, v in query.items() if k.startswith("types[")}
        gte = int(query.get("created[gte]", 0))
        matching = sorted(
            (e for e in self.events if (not types or e["type"] in types) and e["created"] >= gte),
            key=lambda e: (e["created"], e["id"]),
            reverse=True,
        )
        after = query.get("starting_after")
        if after:
            ids = [e["id"] for e in matching]
            matching = matching[ids.index(after) + 1 :]
        limit = int(query.get("limit", 10))
        return 200, {"object": "list", "url": "/v1/events", "has_more": len(matching) > limit, "data": matching[:limit]}
