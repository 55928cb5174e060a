from __future__ import annotations

import pytest


@pytest.fixture
def t0(now) -> int:
    """The Stripe timestamp (seconds) of the test's 'now'."""
    return int(now.timestamp())
