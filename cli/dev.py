from __future__ import annotations

import os
import signal
import sys

import click

from cli import embedded_redis, trigger
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
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    if ctx.settings.flower_basic_auth:
        env["FLOWER_BASIC_AUTH"] = ctx.settings.flower_basic_auth
        click.echo(f"flower on {address}:{port} with basic auth")
    else:
        click.echo(f"flower on {address}:{port} WITHOUT auth (set FLOWER_BASIC_AUTH=user:password)", err=True)
    args = [sys.executable, "-m", "celery", "-A", "worker.main", "flower", f"--address={address}", f"--port={port}"]
    sys.stdout.flush()
    os.execve(args[0], args, env)  # noqa: S606 - our interpreter and our own arguments


dev_group.add_command(trigger.trigger)

commands = [dev_group]
