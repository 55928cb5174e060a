"""The fuzz suite: property-based tests at every edge, bounded so that `make test` stays fast.
No example database is written (the runs are reproducible from their seed on failure)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "billhook-fuzz",
    database=None,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("billhook-fuzz")
