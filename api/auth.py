"""API keys: stored as SHA-256 hashes, bound to one domain; every /api/v1 call needs one."""
from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from flask import Flask, current_app, g, request

from api.errors import ApiError
from common import db
from common.settings import Settings

PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(settings: Settings, name: str) -> str:
    key = f"pr_{settings.domain}_{secrets.token_urlsafe(32)}"
    with db.transaction(settings) as conn:
        conn.execute(sa.text("INSERT INTO api_keys (id, name, key_hash, domain) VALUES (gen_random_uuid(), :n, :h, :d)"),
                     {"n": name, "h": hash_key(key), "d": settings.domain})
    return key


def _authenticate() -> None:
    if not request.path.startswith("/api/v1/") or request.path in PUBLIC_PATHS:
        return
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>")
    settings: Settings = current_app.config["PAYREADY"]
    with db.transaction(settings) as conn:
        row = conn.execute(sa.text(
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = :h AND revoked_at IS NULL "
            "RETURNING name, domain"), {"h": hash_key(header[7:].strip())}).first()
    if row is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    if row.domain != settings.domain:
        raise ApiError(403, "forbidden", "this key belongs to another domain")
    g.actor = f"key:{row.name}"


def init_app(app: Flask) -> None:
    app.before_request(_authenticate)
