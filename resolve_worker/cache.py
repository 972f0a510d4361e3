"""Resolved identities cached in Redis: ``<prefix>entity:<source>:<source_type>:<source_id>`` -> entity id.

Readers (the API, processors) look an identity's entity up here first. Every write that moves an
identity (a resolve run changing its entity, a merge, a split, a pin) deletes its key in the same
step, so a reader never gets a merged-away entity id for longer than the write takes.
"""
from __future__ import annotations

from typing import Iterable, Optional

import redis
import sqlalchemy as sa

from common import db, ratelimit
from common.settings import Settings

TTL_SECONDS = 86_400


def _key(settings: Settings, key: tuple[str, str, str]) -> str:
    return f"{settings.key_prefix}entity:{key[0]}:{key[1]}:{key[2]}"


def client(settings: Settings) -> redis.Redis:
    return ratelimit.client_for(settings)


def entity_of(settings: Settings, key: tuple[str, str, str], r: Optional[redis.Redis] = None) -> Optional[str]:
    """The entity id of an identity: Redis first, then Postgres (and the answer is cached)."""
    r = r or client(settings)
    cached = r.get(_key(settings, key))
    if cached is not None:
        return cached.decode()
    with db.transaction(settings) as conn:
        found = conn.execute(sa.text(
            "SELECT entity_id::text FROM entity_mappings WHERE source = :s AND source_type = :t "
            "AND source_id = :i"), {"s": key[0], "t": key[1], "i": key[2]}).scalar()
    if found:
        r.set(_key(settings, key), found, ex=TTL_SECONDS)
    return found


def invalidate(settings: Settings, keys: Iterable[tuple[str, str, str]], r: Optional[redis.Redis] = None) -> int:
    names = [_key(settings, k) for k in keys]
    if not names:
        return 0
    r = r or client(settings)
    removed = 0
    for start in range(0, len(names), 1000):
        removed += r.delete(*names[start:start + 1000])
    return removed
