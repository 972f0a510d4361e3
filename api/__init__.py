"""The Flask API (served by gunicorn as `api:create_app()`). Read DESIGN §8 for the routes.

create_app is the wiring diagram: one ``init_app`` per subsystem, one blueprint module per area.
A new area adds its module (routes plus its OPENAPI paths) and one line below.
"""
from __future__ import annotations

from typing import Optional

from flask import Flask

from common import embedded, prefix, settings as settings_mod
from common.settings import Settings


def create_app(settings: Optional[Settings] = None) -> Flask:
    settings = settings or embedded.resolve_urls(settings_mod.get())
    prefix.claim(settings)  # a Redis prefix held by another domain fails start-up (ConfigError)
    settings_mod.override(settings)
    app = Flask(__name__, static_folder=None)
    app.config["PAYREADY"] = settings
    app.json.sort_keys = False

    from api import (analytics, audit, auth, coaching_routes, entities, errors, health, metrics, openapi,
                     query_routes, sync, timeline)

    errors.init_app(app)
    audit.init_app(app)
    auth.init_app(app)
    openapi.init_app(app)
    health.init_app(app)
    entities.init_app(app)
    timeline.init_app(app)
    sync.init_app(app)
    analytics.init_app(app)
    query_routes.init_app(app)
    coaching_routes.init_app(app)
    metrics.init_app(app)
    return app
