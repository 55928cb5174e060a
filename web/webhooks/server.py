"""`python -m web.webhooks.server --port N`: the event-loop intake (web/webhooks/asgi.py) under
uvicorn, on uvloop and httptools, as many processes as the web tier's gunicorn has workers
(WEB_CONCURRENCY) and with its keep-alive and graceful-shutdown bounds (web/gunicorn_conf.py).
The Procfile's `intake:` line, and what `make bench` and `make chaos` run as billhook's intake.

The loop and the parser are the choice, not a detail: the same app on asyncio's own loop and
uvicorn's h11 parser served a third as many webhooks (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse

import uvicorn

from shared.logs import configure_logging
from web import gunicorn_conf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m web.webhooks.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging()
    uvicorn.run(
        "web.webhooks.asgi:serving_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=gunicorn_conf.workers,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,  # the app logs each request's one line itself
        log_config=None,  # configure_logging's, in each worker process too (serving_app)
        server_header=False,
        timeout_keep_alive=gunicorn_conf.keepalive,
        timeout_graceful_shutdown=gunicorn_conf.graceful_timeout,
    )


if __name__ == "__main__":
    main()
