"""The worker, beat and Flower entry point: `celery -A worker.main worker`."""

from shared.config import Settings
from shared.logs import configure_logging
from worker.celery_app import make_celery

configure_logging()
celery = make_celery(Settings.from_env())
