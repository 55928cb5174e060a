"""What one transaction did that its committer acts on once the commit succeeded.

The runner of a transaction (the event processor, a checkout capture, an internal API call)
creates an `Outcome` and hands it to the domain functions it calls; they report on it the
account they touched, the outbox rows and the outgoing deliveries they queued. After the commit
the runner enqueues the emails' send tasks and the deliveries' tasks; after a rollback it drops
the outcome, and nothing was queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    account_id: str | None = None
    emails: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)

    def touched(self, account_id: str | None) -> None:
        """The account the work concerns (ops views, logs); the first one named stays."""
        if self.account_id is None:
            self.account_id = account_id

    def queued_email(self, outbox_id: int) -> None:
        self.emails.append(outbox_id)

    def queued_deliveries(self, delivery_ids: list[int]) -> None:
        self.deliveries.extend(delivery_ids)
