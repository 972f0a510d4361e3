"""API keys: stored as SHA-256 hashes, bound to one domain; every /api/v1 call needs one.

A key reads ``pr_<domain>.<secret>``. It is looked up by hash in the serving domain's own
``api_keys``; a key naming another domain is refused with 403 without looking anything up there
(domains never read each other's tables). Lookups are cached per process for ``KEY_CACHE_SECONDS``.
A revocation is published on ``<prefix>keys:revoked`` and every API process drops the key at once;
while a process is not subscribed (Redis away) a revoked key still stops within the TTL.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading

import redis
import sqlalchemy as sa
from cachetools import TTLCache
from flask import Flask, current_app, g, request

from api.errors import ApiError
from common import db, pubsub
from common.settings import Settings

log = logging.getLogger("payready.api.auth")

PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json")
PROTECTED_PREFIXES = ("/api/v1/", "/dashboard")
KEY_PREFIX = "pr_"
KEY_CACHE_SECONDS = 30


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_domain(key: str) -> str | None:
    """The domain a key names, or None if it is not shaped like one of ours."""
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    return key[len(KEY_PREFIX):].split(".", 1)[0] or None


def create_key(settings: Settings, name: str) -> str:
    key = f"{KEY_PREFIX}{settings.domain}.{secrets.token_urlsafe(32)}"
    with db.transaction(settings) as conn:
        conn.execute(sa.text("INSERT INTO api_keys (id, name, key_hash, domain) VALUES (gen_random_uuid(), :n, :h, :d)"),
                     {"n": name, "h": hash_key(key), "d": settings.domain})
    return key


def revocations_channel(settings: Settings) -> str:
    return f"{settings.key_prefix}keys:revoked"


def revoke_keys(settings: Settings, name: str) -> int:
    """Revoke every active key called ``name``; how many. Subscribed API processes refuse them at
    once, the others when their cache entry expires (``KEY_CACHE_SECONDS``)."""
    with db.transaction(settings) as conn:
        digests = conn.execute(sa.text("UPDATE api_keys SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL "
                                       "RETURNING key_hash"), {"n": name}).scalars().all()
    if digests and settings.redis_url:
        try:
            redis.Redis.from_url(settings.redis_url).publish(revocations_channel(settings), ",".join(digests))
        except redis.RedisError as exc:
            log.warning("revocation not pushed to API processes (Redis unavailable); they refuse the key "
                        "within %d s: %s", KEY_CACHE_SECONDS, exc)
    return len(digests)


def list_keys(settings: Settings) -> list[dict]:
    """The domain's keys, oldest first, without their hashes."""
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text("SELECT name, created_at, last_used_at, revoked_at FROM api_keys "
                                    "ORDER BY created_at, name")).mappings().all()
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in rows]


def _presented_key(environ: dict) -> str:
    """The key from ``Authorization: Bearer <key>``, or Basic with the key as password (browsers)."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[2].strip()
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


class KeyStore:
    """Verified keys (by hash) -> (name, domain), or None for unknown/revoked, per process for
    ``ttl`` seconds: a warm request costs a hash and a dict lookup, no database round trip."""

    def __init__(self, settings: Settings, ttl: float = KEY_CACHE_SECONDS, listen: bool = True):
        self.settings = settings
        self._cache: TTLCache = TTLCache(maxsize=10_000, ttl=ttl)
        self._lock = threading.Lock()
        self.revocations = 0  # messages applied (tests wait on it)
        self._subscriber = pubsub.Subscriber(
            redis.Redis.from_url(settings.redis_url, socket_timeout=2), revocations_channel(settings),
            self._revoked, self._forget_all, "key-revocations") if listen and settings.redis_url else None

    def lookup(self, key: str) -> tuple[str, str] | None:
        """(name, domain) of a live key, else None."""
        if self._subscriber:
            self._subscriber.ensure_started()
        digest = hash_key(key)
        with self._lock:
            if digest in self._cache:
                return self._cache[digest]
        with db.transaction(self.settings) as conn:
            row = conn.execute(sa.text(
                "UPDATE api_keys SET last_used_at = now() WHERE key_hash = :h AND revoked_at IS NULL "
                "RETURNING name, domain"), {"h": digest}).first()
        found = (row.name, row.domain) if row else None
        with self._lock:
            self._cache[digest] = found
        return found

    def _revoked(self, digests: str) -> None:
        with self._lock:
            for digest in digests.split(","):
                self._cache.pop(digest, None)
            self.revocations += 1

    def _forget_all(self) -> None:  # (re)subscribed: revocations sent meanwhile were missed
        with self._lock:
            self._cache.clear()


def _challenge(path: str) -> dict:
    # browsers opening /dashboard ask for the key (as the password) instead of showing JSON
    return {"WWW-Authenticate": 'Basic realm="payready"'} if path == "/dashboard" else {}


def _authenticate() -> None:
    req = request._get_current_object()  # once: each use of the ``request`` proxy is a context lookup
    path = req.path
    if path in PUBLIC_PATHS or not path.startswith(PROTECTED_PREFIXES):
        return
    g.actor = actor(current_app._get_current_object(), path, req.environ)


def actor(app: Flask, path: str, environ: dict) -> str:
    """``key:<name>`` of the live key of this domain the request presents, else ApiError (401/403)."""
    settings: Settings = app.config["PAYREADY"]
    key = _presented_key(environ)
    if not key:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>", _challenge(path))
    named = key_domain(key)
    if named is not None and named != settings.domain:
        raise ApiError(403, "forbidden", f"this key belongs to domain {named!r}; this API serves {settings.domain!r}")
    found = app.extensions["payready_keys"].lookup(key)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", _challenge(path))
    name, domain = found
    if domain != settings.domain:
        raise ApiError(403, "forbidden", "this key belongs to another domain")
    return f"key:{name}"


def init_app(app: Flask) -> None:
    app.extensions["payready_keys"] = KeyStore(app.config["PAYREADY"])
    app.before_request(_authenticate)
