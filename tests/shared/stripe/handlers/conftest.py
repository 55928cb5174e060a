"""Every Stripe handler test runs in both eras' shapes: 2024-06-20 (before 2025-03-31.basil) and
the newest version billhook knows, unless it is marked `current_shapes_only`."""

from __future__ import annotations

import pytest

from tests.factories import stripe_events as se

ERAS = (se.PRE_BASIL, se.CURRENT)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stripe_api_version" in metafunc.fixturenames:
        versions = getattr(metafunc.function, "api_versions", ERAS)
        metafunc.parametrize("stripe_api_version", versions, indirect=True, ids=[f"api-{v}" for v in versions])


@pytest.fixture(autouse=True)
def stripe_api_version(request, monkeypatch) -> str:
    """The API version the factories render the test's events in."""
    version = getattr(request, "param", se.CURRENT)
    monkeypatch.setattr(se, "API_VERSION", version)
    return version


@pytest.fixture
def t0(now) -> int:
    """The Stripe timestamp (seconds) of the test's 'now'."""
    return int(now.timestamp())
