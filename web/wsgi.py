"""The WSGI entry point for gunicorn: `gunicorn web.wsgi:app`."""

from shared.logs import configure_logging
from web import create_app

configure_logging()
app = create_app()
