from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import click
from sqlalchemy.orm import Session, sessionmaker

from shared import handoff
from shared.config import Settings
from shared.db import make_engine, make_sessionmaker


@dataclass
class CliContext:
    """Built once per invocation from the same env defaults as the service."""

    settings: Settings
    _session_factory: sessionmaker[Session] | None = field(default=None, repr=False)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._session_factory is None:
            self._session_factory = make_sessionmaker(make_engine(self.settings))
        return self._session_factory

    def hand_over(self, outcome: handoff.Queued) -> None:
        """Publish what a committed transaction queued, its emails' send tasks and its outgoing
        deliveries, as web does after its commits: the main app hears within seconds, not at the
        next sweep. With the broker down the sweeps publish them."""
        emails, deliveries = list(outcome.emails), list(outcome.deliveries)
        if not emails and not deliveries:
            return
        from worker.celery_app import make_celery
        from worker.messages import enqueue_delivery, enqueue_email

        celery = make_celery(self.settings)
        handed = handoff.hand_over(partial(enqueue_email, celery), emails, what="email")
        handed += handoff.hand_over(partial(enqueue_delivery, celery), deliveries, what="delivery")
        if len(handed) < len(emails) + len(deliveries):
            click.echo("the broker is unavailable; the sweeps will send the emails and webhooks left")


pass_ctx = click.make_pass_decorator(CliContext)
