"""Celery tasks, one module per concern; thin: ids in, a session, the domain, a commit."""
