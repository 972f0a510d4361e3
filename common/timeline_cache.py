"""The timeline behind three memory tiers (DESIGN §6): hot in-process LRU, warm Redis, cold Postgres.

- **Hot**: an LRU of finished pages per process: at most 10,000 pages (the design's 10,000 items:
  an LRU's items are its entries) and at most ``HOT_MAX_BYTES`` of page bodies, so a process's
  memory stays bounded whatever the page size; each kept 24 h, keyed by the entity's version, so a
  page of an older version is never served again. A page is kept as its serialized JSON body, so
  a hot hit is a dict lookup and the bytes, with no encoding.
- **Warm**: one Redis sorted set per entity and version, ``<prefix>tl:<entity>:<version>``, scored
  by ``occurred_at`` in microseconds; members are ``<zero-padded id><item JSON>``, so equal times
  order by id like the cold keyset. Kept 7 days. Entities with more than ``WARM_MAX_ITEMS``
  interactions are not copied: their pages come from Postgres (and then the hot tier).
- **Cold**: ``api.services.timeline`` (keyset on ``(occurred_at, id)``).

Invalidation: the version of an entity is ``<generation>.<entity version>`` in Redis; warm keys
carry it. The resolve phase rebuilds every interaction link, so it bumps the domain generation
after each resolve (:func:`invalidate`); a change known to touch only some entities can bump just
theirs. :func:`invalidate` also publishes the change, and each API process listens: while its
subscription is up, hot hits need no Redis round trip (a message makes older hot pages
unreachable; a (re)subscription drops them all). Without a live subscription every request reads
the version (one MGET) first. While subscribed, the version an entity had in Redis is remembered
in process too (under the same local counters), so a warm hit is one Redis round trip; its page is
spliced from the members' stored JSON, not decoded and encoded again. Redis down means cold
reads, never an error.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Iterable, Optional

import redis
import sqlalchemy as sa
from cachetools import LRUCache, TTLCache

from common import db, pubsub
from common.settings import Settings

log = logging.getLogger("payready.timeline")

HOT_MAX_PAGES = 10_000
# 10,000 pages of 20 typical items are ~60 MB; pages of 500 items would be ~2 GB, so bytes cap too
HOT_MAX_BYTES = 64 * 1024 * 1024
HOT_TTL_S = 24 * 3600
WARM_TTL_S = 7 * 24 * 3600
WARM_MAX_ITEMS = 20_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ID_WIDTH = 19
# beyond this many entities one domain-wide bump is cheaper than naming each (one message, one INCR)
WHOLE_DOMAIN_ABOVE = 20_000
KNOWN_VERSIONS = 200_000  # entity -> Redis version remembered while subscribed (about 100 bytes each)
_UNFILTERED_BATCH_MIN = 64  # members read per round trip when filters may skip some
_NEVER = threading.Event()  # ``listening`` of tiers that do not subscribe


def dumps(page: dict) -> bytes:
    """The page as the API sends it (compact JSON, as Flask's jsonify writes it)."""
    return (json.dumps(page, separators=(",", ":")) + "\n").encode()


def micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // dt.timedelta(microseconds=1)


class HotPages(TTLCache):
    """A TTL LRU bounded twice: by the bytes of its page bodies (``maxsize``) and by entries."""

    def __init__(self, max_pages: int, max_bytes: int, ttl: float):
        super().__init__(maxsize=max_bytes, ttl=ttl, getsizeof=len)
        self.max_pages = max_pages

    def __setitem__(self, key, value) -> None:  # noqa: ANN001
        super().__setitem__(key, value)
        while len(self) > self.max_pages:
            self.popitem()  # the least recently used


def channel(settings: Settings) -> str:
    return f"{settings.key_prefix}tl:invalidated"


def invalidate(settings: Settings, entity_ids: Optional[Iterable[str]] = None,
               client: Optional[redis.Redis] = None) -> None:
    """Make cached timelines stale: of the given entities, or of the whole domain (``None``, or
    more than ``WHOLE_DOMAIN_ABOVE`` of them: one bump then costs less than naming each)."""
    ids = None if entity_ids is None else sorted(set(entity_ids))
    if ids == []:
        return
    if ids is not None and len(ids) > WHOLE_DOMAIN_ABOVE:
        ids = None
    client = client or redis.Redis.from_url(settings.redis_url)
    p = settings.key_prefix
    pipe = client.pipeline(transaction=True)
    if ids is None:
        pipe.incr(f"{p}tl:gen")
    for entity_id in ids or ():
        pipe.incr(f"{p}tl:v:{entity_id}")
    pipe.publish(channel(settings), "*" if ids is None else ",".join(ids))
    pipe.execute()


def stale_after_commit(settings: Settings, entity_ids: Iterable[str], what: str) -> None:
    """:func:`invalidate` for a writer whose transaction has committed: Redis down is logged, not
    raised (the data is in; its cached pages expire with their TTL or the next invalidation)."""
    try:
        invalidate(settings, entity_ids)
    except redis.RedisError as exc:
        log.error("cached timelines of %s not invalidated, Redis unavailable: %s", what, exc)


class TimelineTiers:
    """One per process (the API app holds it). Thread-safe: gunicorn threads may share it."""

    def __init__(self, settings: Settings, client: Optional[redis.Redis] = None,
                 hot_max_pages: int = HOT_MAX_PAGES, hot_max_bytes: int = HOT_MAX_BYTES,
                 hot_ttl_s: float = HOT_TTL_S, listen: bool = True):
        self.settings = settings
        self.redis = client or redis.Redis.from_url(settings.redis_url, socket_timeout=2,
                                                    decode_responses=True)
        # warm pages are read as bytes: members are spliced into the body as stored, never decoded
        pool = self.redis.connection_pool
        self._bytes = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, **{**pool.connection_kwargs, "decode_responses": False}))
        self.hot = HotPages(hot_max_pages, hot_max_bytes, hot_ttl_s)
        self._lock = threading.Lock()
        self.counts = {"hot": 0, "warm": 0, "cold": 0}
        self.invalidations = 0  # messages applied (tests wait on it)
        self._subscriber = pubsub.Subscriber(self.redis, channel(settings), self._apply, lambda: self._apply("*"),
                                             "timeline-invalidations") if listen else None
        self._local_gen = 0
        self._local_versions: dict[str, int] = {}
        # entity -> ((local gen, local entity version) when read, Redis version): valid while both match
        self._known_versions: LRUCache = LRUCache(maxsize=KNOWN_VERSIONS)

    # ---- public ----
    def page(self, entity_id: str, **filters: object) -> tuple[dict, str]:
        """(the page, the tier that served it: hot, warm or cold); see :meth:`page_body`."""
        body, tier = self.page_body(entity_id, **filters)
        return json.loads(body), tier

    def page_body(self, entity_id: str, *, start: Optional[dt.datetime] = None, end: Optional[dt.datetime] = None,
                  sources: Optional[list[str]] = None, kinds: Optional[list[str]] = None, limit: int = 50,
                  cursor: Optional[str] = None) -> tuple[bytes, str]:
        """(the page as JSON bytes, the tier that served it: hot, warm or cold)."""
        from api import services

        entity_id = services.parse_uuid(entity_id)
        after = services.decode_cursor(cursor) if cursor else None
        self._start_listener()
        params = (start, end, tuple(sources or ()), tuple(kinds or ()), limit, cursor)
        query = local = None
        version = None
        if self.listening.is_set():  # taken before any read, so a change arriving meanwhile wins
            with self._lock:
                local = (self._local_gen, self._local_versions.get(entity_id, 0))
                query = (entity_id, "local", *local, *params)
                hit = self.hot.get(query)
                known = self._known_versions.get(entity_id)
            if hit is not None:
                return self._served(hit, "hot")
            if known is not None and known[0] == local:
                version = known[1]
        if version is None:
            try:
                version = self._version(entity_id)
            except redis.RedisError as exc:
                log.warning("timeline cache unavailable, reading Postgres: %s", exc)
            if version is not None and local is not None:
                with self._lock:  # remembered under the counters read before the version: a later change wins
                    self._known_versions[entity_id] = (local, version)
        if query is None and version is not None:
            query = (entity_id, version, *params)
            with self._lock:
                hit = self.hot.get(query)
            if hit is not None:
                return self._served(hit, "hot")
        body, tier = None, "cold"
        if version is not None:
            try:
                body = self._warm_page(entity_id, version, start, end, sources, kinds, limit, after)
                tier = "warm" if body is not None else "cold"
            except redis.RedisError as exc:
                log.warning("warm tier unavailable, reading Postgres: %s", exc)
        if body is None:
            page = services.timeline(self.settings, entity_id, start=start, end=end, sources=sources,
                                     kinds=kinds, limit=limit, cursor=cursor)
            body = dumps(page)
        if query is not None and len(body) <= self.hot.maxsize:
            with self._lock:
                self.hot[query] = body
        return self._served(body, tier)

    def hit_ratio(self) -> float:
        total = sum(self.counts.values())
        return (self.counts["hot"] + self.counts["warm"]) / total if total else 0.0

    # ---- tiers ----
    def _served(self, body: bytes, tier: str) -> tuple[bytes, str]:
        from common import metrics

        with self._lock:
            self.counts[tier] += 1
            ratio = self.hit_ratio()
        metrics.CACHE_HIT_RATIO.set(ratio)
        return body, tier

    # ---- invalidation messages ----
    @property
    def listening(self) -> threading.Event:
        """Set while subscribed: hot hits need no version read (messages drop older pages)."""
        return self._subscriber.listening if self._subscriber else _NEVER

    def _start_listener(self) -> None:
        if self._subscriber:
            self._subscriber.ensure_started()

    def _apply(self, data: str) -> None:
        with self._lock:
            if data == "*":
                self._local_gen += 1
                self._local_versions.clear()
                self._known_versions.clear()
            else:
                for entity_id in data.split(","):
                    self._local_versions[entity_id] = self._local_versions.get(entity_id, 0) + 1
            self.invalidations += 1

    def _version(self, entity_id: str) -> str:
        p = self.settings.key_prefix
        gen, ver = self.redis.mget(f"{p}tl:gen", f"{p}tl:v:{entity_id}")
        return f"{gen or 0}.{ver or 0}"

    def _key(self, entity_id: str, version: str) -> str:
        return f"{self.settings.key_prefix}tl:{entity_id}:{version}"

    def _warm_page(self, entity_id, version, start, end, sources, kinds, limit, after) -> Optional[bytes]:  # noqa: ANN001
        key = self._key(entity_id, version)
        high = micros(after[0]) if after and after[0] else "+inf"
        if end is not None and (high == "+inf" or micros(end) - 1 < high):
            high = micros(end) - 1
        low = micros(start) if start else "-inf"
        filtered = bool(sources or kinds or after)  # members that may be skipped: read ahead
        batch = max(limit + 1, _UNFILTERED_BATCH_MIN) if filtered else limit + 1
        scored = after is not None  # scores only serve the cursor's keyset test
        # the head and the first batch in one round trip; a miss fills the set and reads again
        pipe = self._bytes.pipeline(transaction=False)
        pipe.get(key + ":head")
        pipe.zrevrangebyscore(key, high, low, start=0, num=batch, withscores=scored)
        head, rows = pipe.execute()
        if head is None:
            filled = self._fill(entity_id, key)
            if filled is None or filled == "big":
                return None
            head = filled.encode()
            rows = self._bytes.zrevrangebyscore(key, high, low, start=0, num=batch, withscores=scored)
        if head == b"big":
            return None
        if not filtered:  # the common first page: the members as they are
            items = [member[_ID_WIDTH:] for member in rows]
        else:
            items = self._filtered_items(key, rows, high, low, batch, sources, kinds, limit, after)
        from api import services

        page = items[:limit]
        nxt = None
        if len(items) > limit:
            last = json.loads(page[-1])
            nxt = services.encode_cursor(dt.datetime.fromisoformat(last["occurred_at"]), last["id"])
        return b"".join((b'{"entity":', head, b',"items":[', b",".join(page), b'],"next_cursor":',
                         json.dumps(nxt).encode(), b"}\n"))

    def _filtered_items(self, key, rows, high, low, batch, sources, kinds, limit, after) -> list[bytes]:  # noqa: ANN001
        """Up to ``limit + 1`` item JSONs past the cursor and matching the filters, reading on in
        batches while members are skipped."""
        items: list[bytes] = []
        offset = 0
        cursor = (micros(after[0]), after[1]) if after else None
        while True:
            for row in rows:
                member = row[0] if cursor else row
                if cursor and (int(row[1]), int(member[:_ID_WIDTH])) >= cursor:
                    continue
                if sources or kinds:
                    item = json.loads(member[_ID_WIDTH:])
                    if sources and item["source"] not in sources or kinds and item["kind"] not in kinds:
                        continue
                items.append(member[_ID_WIDTH:])
                if len(items) > limit:
                    return items
            if len(rows) < batch:
                return items
            offset += batch
            rows = self._bytes.zrevrangebyscore(key, high, low, start=offset, num=batch, withscores=bool(cursor))

    def _fill(self, entity_id: str, key: str) -> Optional[str]:
        """Copy the entity's whole timeline into its sorted set; None if it does not exist."""
        from api import services

        with db.transaction(self.settings) as conn:
            try:
                entity = services.entity_head(conn, entity_id)
            except services.NotFound:
                return None
            count = conn.execute(sa.text(
                "SELECT count(*) FROM interaction_entities WHERE entity_id = :eid"), {"eid": entity_id}).scalar()
            if count > WARM_MAX_ITEMS:
                self.redis.set(key + ":head", "big", ex=WARM_TTL_S)
                return "big"
            rows = conn.execute(sa.text(services.TIMELINE_SQL.format(where="", limit="")),
                                {"eid": entity_id}).mappings().all()
        head = json.dumps(entity)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        for start in range(0, len(rows), 1000):
            pipe.zadd(key, {f"{r['id']:0{_ID_WIDTH}d}" + json.dumps(services.timeline_item(r)): micros(r["occurred_at"])
                            for r in rows[start:start + 1000]})
        pipe.expire(key, WARM_TTL_S)
        pipe.set(key + ":head", head, ex=WARM_TTL_S)
        pipe.execute()
        return head
