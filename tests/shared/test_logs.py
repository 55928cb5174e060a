"""Logging set-up: billhook's lines, without library chatter."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.config import PROJECT_ROOT


def test_db_upgrade_prints_one_line_whoever_configured_logging(tmp_path):
    """Alembic announces its plugins and its migration context at INFO: 9 lines per upgrade."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLHOOK_", "DATABASE_URL"))}
    env.update(BILLHOOK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    script = (
        "from shared.logs import configure_logging; configure_logging()\n"
        "from cli.main import main; main(['db', 'upgrade'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip().splitlines() == ["database is at the newest migration"]
