"""`.env.example` names every environment variable billhook's settings read."""

from __future__ import annotations

import re

from shared.config import PROJECT_ROOT


def test_env_example_lists_every_variable_the_settings_read():
    source = (PROJECT_ROOT / "shared" / "config.py").read_text()
    read = set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE))

    assert len(read) > 20  # the pattern still finds them
    assert read - listed == set()
