from __future__ import annotations

import click
from alembic import command
from alembic.config import Config

from cli.context import CliContext, pass_ctx
from shared import credentials
from shared.billing import catalog
from shared.config import PROJECT_ROOT
from shared.logs import quiet_libraries


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@click.group("db")
def db_group() -> None:
    """The store's schema."""


@db_group.command("upgrade")
@pass_ctx
def upgrade(ctx: CliContext) -> None:
    """Apply the migrations up to the newest."""
    quiet_libraries()
    command.upgrade(alembic_config(ctx.settings.database_url), "head")
    click.echo("database is at the newest migration")


@click.command("seed")
@pass_ctx
def seed(ctx: CliContext) -> None:
    """Create the seed's plans, credit packages and provider rows where missing."""
    with ctx.session_factory.begin() as session:
        plans, packages = catalog.seed_catalog(session)
        created = credentials.seed_providers(session)
    click.echo(
        f"seeded {plans} plans, {packages} credit packages" + (f", providers: {', '.join(created)}" if created else "")
    )


commands = [db_group, seed]
