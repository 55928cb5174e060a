"""The OpenAPI document and the views agree on every id and header they take: a value the
document's schema allows is one the view accepts, and one it refuses the view refuses (with
`package_id: ""` among them). The document is checked with jsonschema_rs, the validator
schemathesis itself uses."""

from __future__ import annotations

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from web import billing_api
from web.errors import ApiError
from web.openapi import document

OPERATIONS = {
    "/api/v1/billing/stripe/checkout": "plan_id",
    "/api/v1/billing/stripe/credit-checkout": "package_id",
    "/api/v1/billing/paypal/create-order": "package_id",
    "/api/v1/billing/paypal/capture-order": "order_id",
    "/api/v1/billing/paypal/create-subscription": "plan_id",
}


def _body_schema(path: str) -> dict:
    return document()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def _view_accepts(field: str, value: object) -> bool:
    try:
        billing_api._field({field: value}, field)
    except ApiError as exc:
        assert exc.status == 400
        return False
    return True


ids = st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9_.:-]{1,100}", fullmatch=True), st.integers())


@pytest.mark.parametrize("path, field", OPERATIONS.items())
@given(value=ids)
@example(value="")
@example(value=" growth")
@example(value="growth\n")
@example(value="x" * 100)
@example(value="x" * 101)
def test_the_document_allows_exactly_the_ids_the_view_accepts(path, field, value):
    validator = jsonschema_rs.validator_for(_body_schema(path))

    assert validator.is_valid({field: value}) == _view_accepts(field, value)


def test_the_document_requires_the_id_the_view_requires():
    for path, field in OPERATIONS.items():
        assert _body_schema(path)["required"] == [field]
        assert not jsonschema_rs.validator_for(_body_schema(path)).is_valid({})


@given(key=st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9_.:-]{1,100}", fullmatch=True)))
@example(key="")
@example(key="k\n")
def test_the_documented_idempotency_key_is_the_one_the_view_accepts(key):
    [header] = document()["paths"]["/api/v1/billing/stripe/checkout"]["post"]["parameters"]
    documented = jsonschema_rs.validator_for(header["schema"]).is_valid(key)

    assert documented == bool(billing_api.REQUEST_KEY.fullmatch(key))
