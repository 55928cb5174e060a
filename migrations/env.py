from __future__ import annotations

from alembic import context

from shared.config import Settings
from shared.db import make_engine
from shared.models import Base

config = context.config
target_metadata = Base.metadata


def _engine():
    connection = config.attributes.get("connection")
    if connection is not None:
        return None, connection
    url = config.get_main_option("sqlalchemy.url")
    settings = Settings.from_env()
    if url:
        settings = settings.with_overrides(database_url=url)
    return make_engine(settings), None


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine, connection = _engine()
    if connection is not None:
        _run(connection)
        return
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
