from __future__ import annotations

import os
import signal
import sys

import click

from cli import embedded_redis, service, trigger
from cli.context import CliContext, pass_ctx
from shared.config import EMBEDDED_REDIS_PORT


@click.group("dev")
def dev_group() -> None:
    """Local running helpers."""


@dev_group.command("redis")
@pass_ctx
def redis(ctx: CliContext) -> None:
    """Run the embedded broker in the foreground when REDIS_URL is unset (as `make run` does)."""
    if not ctx.settings.redis_embedded:
        click.echo("REDIS_URL is set: using that broker, no embedded redis-server needed")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return
    if embedded_redis.is_listening(EMBEDDED_REDIS_PORT):
        click.echo(f"a redis-server already listens on 127.0.0.1:{EMBEDDED_REDIS_PORT}; using it")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return
    args = embedded_redis.server_args(EMBEDDED_REDIS_PORT, ctx.settings.var_dir / "redis")
    click.echo(f"embedded redis-server on 127.0.0.1:{EMBEDDED_REDIS_PORT}, data in {ctx.settings.var_dir / 'redis'}")
    sys.stdout.flush()
    os.execv(args[0], args)  # noqa: S606 - a fixed binary and our own arguments


@dev_group.command("flower")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", default=5555, show_default=True)
@pass_ctx
def flower(ctx: CliContext, address: str, port: int) -> None:
    """Run Flower, with basic auth when FLOWER_BASIC_AUTH (user:password[,user:password]) is set.

    The credentials reach Flower through its own FLOWER_BASIC_AUTH variable, not its command
    line, so they never show in `ps`."""
    # Without billhook's PROMETHEUS_MULTIPROC_DIR: Flower's own series belong on Flower's /metrics,
    # not in the files web's /metrics adds up.
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWER_BASIC_AUTH", "PROMETHEUS_MULTIPROC_DIR")}
    if ctx.settings.flower_basic_auth:
        env["FLOWER_BASIC_AUTH"] = ctx.settings.flower_basic_auth
        click.echo(f"flower on {address}:{port} with basic auth")
    else:
        click.echo(f"flower on {address}:{port} WITHOUT auth (set FLOWER_BASIC_AUTH=user:password)", err=True)
    args = [sys.executable, "-m", "celery", "-A", "worker.main", "flower", f"--address={address}", f"--port={port}"]
    sys.stdout.flush()
    os.execve(args[0], args, env)  # noqa: S606 - our interpreter and our own arguments


@dev_group.command("credentials")
@click.option("--token", "token_only", is_flag=True, help="Print only the service token (for scripts).")
@pass_ctx
def credentials(ctx: CliContext, token_only: bool) -> None:
    """Where billhook's own development credentials are, and how to use them.

    A token set in the environment is not printed: it is no development secret."""
    settings = ctx.settings
    if token_only:
        click.echo(settings.service_token)
        return
    base = service.default_base_url()
    token_file = settings.var_dir / ".service_token"
    if os.environ.get("BILLHOOK_SERVICE_TOKEN"):
        click.echo("service token  from BILLHOOK_SERVICE_TOKEN (not shown)")
    else:
        click.echo(f"service token  {settings.service_token}")
        click.echo(f"               kept in {token_file}; BILLHOOK_SERVICE_TOKEN replaces it")
    click.echo(f"               the internal API ({base}/api/v1/internal/...) takes `Authorization: Bearer <it>`")
    if os.environ.get("BILLHOOK_JWT_SECRET"):
        click.echo("JWT secret     from BILLHOOK_JWT_SECRET (not shown)")
    else:
        click.echo(f"JWT secret     in {settings.var_dir / '.jwt_secret'}; BILLHOOK_JWT_SECRET replaces it")
    click.echo(
        "               the main app signs HS256 tokens with it (aud "
        f"{settings.jwt_audience!r}, sub = account id); `billhook tokens create --account ID` mints one"
    )
    if settings.flower_basic_auth:
        users = ", ".join(pair.split(":", 1)[0] for pair in settings.flower_basic_auth.split(",") if ":" in pair)
        click.echo(f"ops login      FLOWER_BASIC_AUTH is set (users: {users}) for {base}/ops and Flower")
    else:
        click.echo(f"ops login      not set: export FLOWER_BASIC_AUTH=ops:<password> for {base}/ops and Flower")


dev_group.add_command(trigger.trigger)

commands = [dev_group]
