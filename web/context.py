from __future__ import annotations

from flask import current_app

from web import Billhook


def billhook() -> Billhook:
    return current_app.extensions["billhook"]
