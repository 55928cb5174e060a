from __future__ import annotations

from dataclasses import dataclass, field

import click
from sqlalchemy.orm import Session, sessionmaker

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


pass_ctx = click.make_pass_decorator(CliContext)
