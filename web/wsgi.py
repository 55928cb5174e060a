"""The WSGI entry point for gunicorn: `gunicorn web.wsgi:app`."""

import gc

from shared.logs import configure_logging
from web import create_app

configure_logging()
app = create_app()
# Everything loaded so far (Flask, SQLAlchemy, Celery, the app) lives as long as the process: move
# it out of the collector's reach. A full collection otherwise walks all of it, a pause in which
# no request thread of the process runs: a tail-latency stall under load.
gc.freeze()
