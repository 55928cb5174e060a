"""The migration builds exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from cli.db import alembic_config
from shared.models import Base


@pytest.fixture(autouse=True)
def var_dir(tmp_path, monkeypatch):
    """migrations/env.py builds Settings from the environment: keep its dev secrets out of var/."""
    monkeypatch.setenv("BILLHOOK_VAR_DIR", str(tmp_path / "var"))


def schema_differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_on_sqlite_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    assert schema_differences(url), "an empty database must differ from the models"

    command.upgrade(alembic_config(url), "head")

    assert schema_differences(url) == []


def test_downgrade_to_base_and_upgrade_again_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")

    command.downgrade(config, "base")
    assert table_names(url) <= {"alembic_version"}

    command.upgrade(config, "head")
    assert schema_differences(url) == []


@pytest.mark.postgres
def test_upgrade_head_on_postgresql_matches_the_models_and_downgrade_removes_it(pg_database):
    config = alembic_config(pg_database)

    command.upgrade(config, "head")
    assert schema_differences(pg_database) == []

    command.downgrade(config, "base")
    assert table_names(pg_database) <= {"alembic_version"}
