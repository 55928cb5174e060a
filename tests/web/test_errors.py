"""Every error answer is JSON `{"error": {"code", "message"}}`, routing's own included, and keeps
the headers HTTP gives it meaning with (a 405's Allow)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/billing/nowhere", "/api/v1/internal/nowhere", "/ops/nowhere"])
def test_an_unknown_path_is_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.is_json
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/webhooks/stripe", {"POST"}),
        ("PUT", "/webhooks/paypal", {"POST"}),
        ("DELETE", "/api/v1/billing/account", {"GET", "HEAD"}),
        ("GET", "/api/v1/billing/stripe/checkout", {"POST"}),
        ("POST", "/api/v1/openapi.json", {"GET", "HEAD"}),
    ],
)
def test_a_wrong_method_is_a_json_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.is_json
    assert response.json["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["Allow"].split(",")} - {"OPTIONS"} == allowed
