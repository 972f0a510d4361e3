"""The Flask API (served by gunicorn as `api:create_app()`). Read DESIGN §8 for the routes."""
from __future__ import annotations

from typing import Optional

from flask import Flask

from common import embedded, settings as settings_mod
from common.settings import Settings


def create_app(settings: Optional[Settings] = None) -> Flask:
    settings = settings or embedded.resolve_urls(settings_mod.get())
    settings_mod.override(settings)
    app = Flask(__name__)
    app.config["PAYREADY"] = settings
    app.json.sort_keys = False

    from api import auth, errors, health, sync, timeline

    errors.init_app(app)
    auth.init_app(app)
    health.init_app(app)
    sync.init_app(app)
    timeline.init_app(app)
    __import__("api.metrics").metrics.init_app(app)  # GET /metrics (issue 7)
    return app
