"""A Redis key prefix belongs to one domain: claimed when a process starts, so two never share keys.

The derived prefix is the domain's initials (``pay_ready`` -> ``pr:``), so ``pay_roll`` would get
the same one and read ``pay_ready``'s cached entity ids, rate-limit buckets and Celery messages.
Every start-up choke point (the Celery app's configure, the API's create_app, the CLI's settings)
calls :func:`claim`: ``SET <prefix>domain <domain> NX`` (no TTL), and a prefix already held by
another domain fails start-up with a :class:`ConfigError` naming PAYREADY_REDIS_PREFIX.
"""
from __future__ import annotations

import logging

import redis

from common import ratelimit
from common.settings import ConfigError, Settings, redact_url

log = logging.getLogger(__name__)


def claim(settings: Settings) -> None:
    """Claim ``settings.key_prefix`` in Redis for ``settings.domain``; ConfigError if another owns it.

    No Redis URL yet (no embedded stack running) defers the check to the start that has one; an
    unreachable Redis is logged and start-up goes on, as every other Redis use here degrades.
    """
    if not settings.redis_url:
        return
    key = settings.key_prefix + "domain"
    client = ratelimit.client_for(settings, socket_timeout=2)
    try:
        client.set(key, settings.domain, nx=True)
        owner = client.get(key)
    except redis.RedisError as exc:
        log.warning("Redis prefix %r not checked against other domains (Redis unavailable): %s",
                    settings.key_prefix, exc)
        return
    finally:
        client.close()
    owner = owner.decode() if isinstance(owner, bytes) else owner
    if owner is not None and owner != settings.domain:
        derived = "" if settings.redis_prefix else " (derived from the domain's initials)"
        raise ConfigError(f"PAYREADY_REDIS_PREFIX: prefix {settings.key_prefix!r}{derived} in "
                          f"{redact_url(settings.redis_url)} already belongs to domain {owner!r}; "
                          f"set PAYREADY_REDIS_PREFIX for {settings.domain!r}")
