from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from shared.email.render import SAMPLES, TEMPLATES, money, render


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_html_and_text_in_the_base_layout(template):
    rendered = render(template, SAMPLES[template], product_name="Acme", app_url="https://acme.example")
    assert rendered.subject
    assert rendered.html.startswith("<!doctype html>") and f"<title>{rendered.subject}</title>" in rendered.html
    assert rendered.text.startswith("Hi Ada,")
    for body in (rendered.html, rendered.text):
        assert "Acme" in body and "https://acme.example" in body
    assert "<" not in rendered.text


def test_html_escapes_context_values_and_text_keeps_them():
    context = {**SAMPLES["payment_rejected"], "reason": "<script>x</script>"}
    rendered = render("payment_rejected", context)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<script>x</script>" in rendered.text


def test_optional_values_are_left_out_when_missing():
    rendered = render("payment_confirmation", {"amount_cents": 500, "currency": "eur", "description": "Credits"})
    assert rendered.subject == "Payment received: €5.00"
    assert "Invoice" not in rendered.text and "Hi there," in rendered.text


def test_a_missing_required_value_is_an_error():
    with pytest.raises(UndefinedError):
        render("email_verification", {})


def test_money_formats_minor_units():
    assert money(123456, "usd") == "$1,234.56"
    assert money(500, "jpy") == "500 JPY"
    assert money(500, "chf") == "5.00 CHF"
