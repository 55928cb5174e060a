"""Celery workers: load an inbox event, dispatch it to its handler, retry with backoff."""
