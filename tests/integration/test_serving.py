"""Serving on real Postgres and Redis: the timeline's memory tiers agree with Postgres and are
invalidated by a data change; row-level security keeps domains apart for an ordinary database
role even with schema-qualified names and forged filters; every API call lands in the audit log."""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
import redis
import sqlalchemy as sa

from api import create_app, services
from common import audit, db, rls, timeline_cache
from common.timeline_cache import TimelineTiers
from tests.conftest import drop_domain, make_settings

SOURCES = ("gong", "slack", "hubspot", "salesforce")
KINDS = {"gong": "call", "slack": "thread", "hubspot": "email", "salesforce": "task"}
BASE = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def seed(settings, n: int = 40) -> dict:
    """A company with two people and ``n`` interactions (some at the same instant, two deleted)."""
    company, alice, bob = (str(uuid.uuid4()) for _ in range(3))
    with db.transaction(settings) as conn:
        conn.execute(sa.text("INSERT INTO companies (id, name, primary_domain) VALUES (:id, 'Acme Rail', 'acmerail.com')"),
                     {"id": company})
        conn.execute(sa.text("INSERT INTO persons (id, display_name, primary_email, company_id) VALUES "
                             "(:a, 'Alice Rail', 'alice@acmerail.com', :c), (:b, 'Bob Rail', 'bob@acmerail.com', :c)"),
                     {"a": alice, "b": bob, "c": company})
        for i in range(n):
            source = SOURCES[i % 4]
            at = BASE + dt.timedelta(hours=(i // 3))  # three interactions share each instant
            iid = conn.execute(sa.text(
                "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at, title, body, deleted) "
                "VALUES (:s, 'x', :sid, :k, :at, :t, :b, :d) RETURNING id"),
                {"s": source, "sid": f"{settings.domain}-{i}", "k": KINDS[source], "at": at, "t": f"talk {i}",
                 "b": f"body {i}", "d": i in (5, 17)}).scalar()
            person = alice if i % 2 else bob
            conn.execute(sa.text(
                "INSERT INTO interaction_entities (entity_id, interaction_id, entity_type, occurred_at) VALUES "
                "(:p, :i, 'person', :at), (:c, :i, 'company', :at)"), {"p": person, "i": iid, "c": company, "at": at})
    return {"company": company, "alice": alice, "bob": bob, "n": n}


@pytest.fixture(scope="module")
def seeded(domain):
    return seed(domain)


@pytest.fixture()
def tiers(domain):
    client = redis.Redis.from_url(domain.redis_url, decode_responses=True)
    for key in client.scan_iter(f"{domain.key_prefix}tl:*"):
        client.delete(key)
    tiers = TimelineTiers(domain, client)
    tiers._start_listener()
    assert tiers.listening.wait(10), "subscribed to the invalidation channel"
    return tiers


def applied(tiers, before: int) -> None:
    """Wait until this process has received an invalidation published after ``before`` were applied."""
    deadline = time.monotonic() + 10
    while tiers.invalidations <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tiers.invalidations > before


def walk(tiers_or_none, settings, entity, **filters) -> tuple[list, set]:
    """Every page of a timeline: ([(occurred_at, id)], {tiers that served})."""
    seen, served, cursor = [], set(), None
    for _ in range(1000):  # a cursor that repeats a page would loop forever
        if tiers_or_none is None:
            page, tier = services.timeline(settings, entity, cursor=cursor, **filters), "cold"
        else:
            page, tier = tiers_or_none.page(entity, cursor=cursor, **filters)
        seen += [(i["occurred_at"], i["id"], i["source"], i["kind"]) for i in page["items"]]
        served.add(tier)
        cursor = page["next_cursor"]
        if not cursor:
            return seen, served
    raise AssertionError(f"the cursor never ended: {len(seen)} items read")


@pytest.mark.parametrize("filters", [
    {"limit": 7},
    {"limit": 4, "sources": ["gong", "slack"]},
    {"limit": 5, "kinds": ["email"]},
    {"limit": 3, "start": BASE + dt.timedelta(hours=3), "end": BASE + dt.timedelta(hours=9)},
])
def test_warm_and_hot_pages_equal_postgres(domain, seeded, tiers, filters):
    cold, _ = walk(None, domain, seeded["company"], **filters)
    warm, served_first = walk(tiers, domain, seeded["company"], **filters)
    hot, served_again = walk(tiers, domain, seeded["company"], **filters)
    assert cold and warm == cold == hot
    assert served_first == {"warm"} and served_again == {"hot"}
    assert cold == sorted(cold, reverse=True) and len(set(cold)) == len(cold)


def test_company_timeline_includes_its_people_and_hides_deleted(domain, seeded, tiers):
    company, _ = walk(tiers, domain, seeded["company"], limit=50)
    alice, _ = walk(tiers, domain, seeded["alice"], limit=50)
    bob, _ = walk(tiers, domain, seeded["bob"], limit=50)
    assert len(company) == seeded["n"] - 2
    assert sorted(alice + bob, reverse=True) == company


def test_a_change_invalidates_every_tier(domain, seeded, tiers):
    before, _ = tiers.page(seeded["alice"], limit=5)
    tiers.page(seeded["alice"], limit=5)
    with db.transaction(domain) as conn:
        iid = conn.execute(sa.text(
            "INSERT INTO interactions (source, source_type, source_id, kind, occurred_at, title) "
            "VALUES ('gong', 'x', 'late-call', 'call', :at, 'newest call') RETURNING id"),
            {"at": BASE + dt.timedelta(days=30)}).scalar()
        conn.execute(sa.text("INSERT INTO interaction_entities VALUES (:p, :i, 'person', :at)"),
                     {"p": seeded["alice"], "i": iid, "at": BASE + dt.timedelta(days=30)})
    stale, tier = tiers.page(seeded["alice"], limit=5)
    assert tier == "hot" and stale == before, "without invalidation the cache still answers"
    seen = tiers.invalidations
    timeline_cache.invalidate(domain, [seeded["alice"]])
    applied(tiers, seen)
    fresh, tier = tiers.page(seeded["alice"], limit=5)
    assert tier == "warm" and fresh["items"][0]["title"] == "newest call"
    assert tiers.page(seeded["bob"], limit=5)[1] == "warm" and tiers.page(seeded["bob"], limit=5)[1] == "hot"
    seen = tiers.invalidations
    timeline_cache.invalidate(domain)  # the whole domain (what the resolve phase does)
    applied(tiers, seen)
    assert tiers.page(seeded["alice"], limit=5)[1] == "warm"
    assert tiers.page(seeded["alice"], limit=5)[1] == "hot"
    assert tiers.page(seeded["bob"], limit=5)[1] == "warm", "a domain-wide change reaches every entity"


def test_the_hot_tier_is_bounded_in_pages_and_in_bytes(domain, seeded, tiers):
    by_pages = TimelineTiers(domain, tiers.redis, hot_max_pages=2, listen=False)
    for entity in ("company", "alice", "bob"):  # three pages > 2: the least recently used goes
        by_pages.page(seeded[entity], limit=6)
    assert len(by_pages.hot) == 2
    assert by_pages.page(seeded["company"], limit=6)[1] == "warm"
    assert by_pages.page(seeded["bob"], limit=6)[1] == "hot"
    sizes = [len(by_pages.page_body(seeded[entity], limit=6)[0]) for entity in ("company", "alice")]
    cap = max(sizes) + 10  # room for either page, not for both
    by_bytes = TimelineTiers(domain, tiers.redis, hot_max_bytes=cap, listen=False)
    by_bytes.page(seeded["company"], limit=6)
    by_bytes.page(seeded["alice"], limit=6)  # together over the byte cap: the older goes
    assert len(by_bytes.hot) == 1 and by_bytes.hot.currsize == sizes[1]
    assert by_bytes.page(seeded["company"], limit=6)[1] == "warm"
    assert by_bytes.page(seeded["alice"], limit=6)[1] == "warm", "the company page pushed it out in turn"


def test_a_quiet_channel_stays_subscribed(tiers):
    """Longer than the client's 2 s socket timeout without a message: still the same subscription."""
    seen = tiers.invalidations
    time.sleep(3)
    assert tiers.listening.is_set() and tiers.invalidations == seen


def test_without_the_channel_each_request_checks_the_version(domain, seeded, tiers):
    deaf = TimelineTiers(domain, tiers.redis, listen=False)
    assert deaf.page(seeded["alice"], limit=4)[1] == "warm" and deaf.page(seeded["alice"], limit=4)[1] == "hot"
    timeline_cache.invalidate(domain, [seeded["alice"]])
    assert deaf.page(seeded["alice"], limit=4)[1] == "warm", "the version read saw the change at once"


def test_hit_ratio_gauge_is_exported(domain, seeded, tiers):
    from prometheus_client import REGISTRY

    from common import metrics

    tiers.page(seeded["bob"], limit=3)
    tiers.page(seeded["bob"], limit=3)
    tiers.page(seeded["bob"], limit=3)
    assert tiers.counts["hot"] == 2 and tiers.counts["warm"] == 1
    assert REGISTRY.get_sample_value(f"{metrics.P}cache_hit_ratio") == pytest.approx(1.0)
    tiers._served({}, "cold")
    tiers._served({}, "cold")  # two misses among five lookups
    assert REGISTRY.get_sample_value(f"{metrics.P}cache_hit_ratio") == pytest.approx(3 / 5)


def test_unknown_entity_is_not_found_and_redis_down_reads_postgres(domain, seeded):
    dead = TimelineTiers(domain, redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, decode_responses=True))
    page, tier = dead.page(seeded["company"], limit=50)
    assert tier == "cold" and len(page["items"]) == seeded["n"] - 2
    with pytest.raises(services.NotFound):
        dead.page(str(uuid.uuid4()))


@pytest.fixture(scope="module")
def other_domain(stack_urls):
    from common.cli import migrate

    settings = make_settings(stack_urls, f"t_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    yield settings
    drop_domain(settings)


def test_row_level_security_hides_other_domains_from_the_service_role(domain, seeded, other_domain):
    seed(other_domain, n=8)
    role, password = f"api_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with db.transaction(domain) as conn:
        assert rls.unprotected_tables(conn, domain.schema) == []
        rls.create_service_role(conn, role, password, domain.schema)
        rls.grant_schema(conn, role, other_domain.schema)  # a careless grant: RLS must still hold
    url = sa.engine.make_url(db.sqlalchemy_url(domain.database_url)).set(username=role, password=password)
    engine = db.make_engine(url.render_as_string(hide_password=False), domain.schema, pool_size=1)
    other = other_domain.schema
    try:
        with engine.connect() as conn:
            own = conn.execute(sa.text("SELECT count(*) FROM interactions")).scalar()
            assert own == seeded["n"] + 1
            forged = conn.execute(sa.text(
                f'SELECT count(*) FROM "{other}".interactions WHERE source_id LIKE :d OR true'),
                {"d": f"{other}%"}).scalar()
            people = conn.execute(sa.text(f'SELECT count(*) FROM "{other}".persons WHERE id IS NOT NULL')).scalar()
            keys = conn.execute(sa.text(f'SELECT count(*) FROM "{other}".api_keys')).scalar()
            assert (forged, people, keys) == (0, 0, 0)
            wrote = conn.execute(sa.text(
                f"UPDATE \"{other}\".interactions SET title = 'pwned' WHERE true")).rowcount
            assert wrote == 0
            conn.rollback()
            with pytest.raises(sa.exc.ProgrammingError):  # nor can it write rows into another domain
                conn.execute(sa.text(f"INSERT INTO \"{other}\".companies (id, name) VALUES (gen_random_uuid(), 'x')"))
            conn.rollback()
        with db.transaction(other_domain) as conn:  # the rows are there for their own domain
            assert conn.execute(sa.text("SELECT count(*) FROM interactions")).scalar() == 8
    finally:
        engine.dispose()
        with db.transaction(domain) as conn:
            for schema in (domain.schema, other):
                conn.execute(sa.text(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"'))
                conn.execute(sa.text(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM "{role}"'))
                conn.execute(sa.text(f'REVOKE ALL ON SCHEMA "{schema}" FROM "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_every_api_call_is_audited(domain, seeded):
    from api import auth

    app = create_app(domain)
    key = auth.create_key(domain, "auditor")
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/api/v1/interactions/timeline?entity_id={seeded['company']}&limit=2",
                      headers=bearer).status_code == 200
    assert client.get("/api/v1/entities?q=acme").status_code == 401
    assert client.get("/api/v1/entities?q=a", headers=bearer).status_code == 400
    assert client.post("/api/v1/sync/trigger", json={"sources": ["zoom"]}, headers=bearer).status_code == 400
    app.extensions["payready_audit"].flush()
    with db.transaction(domain) as conn:
        rows = conn.execute(sa.text(
            "SELECT actor, action, target, outcome, at, detail FROM audit_log ORDER BY id")).mappings().all()
    got = [(r["actor"], r["action"], r["target"], r["outcome"]) for r in rows]
    assert got[-4:] == [
        ("key:auditor", "GET /api/v1/interactions/timeline", f"entity_id={seeded['company']}", "200"),
        ("anonymous", "GET /api/v1/entities", "q=acme", "401"),
        ("key:auditor", "GET /api/v1/entities", "q=a", "400"),
        ("key:auditor", "POST /api/v1/sync/trigger", None, "400"),
    ]
    assert all(r["at"] is not None and "ms" in r["detail"] for r in rows[-4:])
    assert rows[-1]["detail"]["request"] == {"sources": ["zoom"]}


def test_the_audit_writer_keeps_rows_through_a_database_outage(domain):
    broken = make_settings_like(domain, database_url="postgresql://nobody@127.0.0.1:1/none")
    writer = audit.AuditWriter(broken)
    writer.record(audit.row("key:x", "GET /x", None, "200"))
    assert writer.flush() == 0 and len(writer._queue) == 1
    writer.settings = domain
    assert writer.flush() == 1
    with db.transaction(domain) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'GET /x'")).scalar() == 1
    time.sleep(0)  # the background thread shares the queue; nothing else to wait for


def test_a_nul_or_a_lone_surrogate_in_a_request_does_not_stop_the_audit_log(domain):
    """``?q=%00`` once made every later flush of the process fail (Postgres refuses NUL in text):
    an anonymous caller could switch the audit log off. Such requests are a 400 now, and text the
    audit row still carries (a path segment, a key's name) is stored with U+FFFD instead."""
    app = create_app(domain)
    client = app.test_client()
    assert client.get("/api/v1/entities?q=nul%00here").status_code == 400
    assert client.post("/api/v1/sync/trigger", json={"sources": ["gong\u0000", "\ud800"]}).status_code == 400
    assert client.get("/api/v1/sync/runs/nul%00here").status_code == 401
    assert client.get("/api/v1/entities?q=after-the-nul").status_code == 401
    writer = app.extensions["payready_audit"]
    writer.flush()
    assert not writer._queue
    with db.transaction(domain) as conn:
        rows = conn.execute(sa.text(
            "SELECT action, target, outcome FROM audit_log WHERE actor = 'anonymous' ORDER BY id DESC LIMIT 4"
        )).all()
    assert [tuple(r) for r in rows][::-1] == [
        ("GET /api/v1/entities", "q=nul\ufffdhere", "400"),
        ("POST /api/v1/sync/trigger", None, "400"),
        ("GET /api/v1/sync/runs/<run_id>", "run_id=nul\ufffdhere", "401"),
        ("GET /api/v1/entities", "q=after-the-nul", "401")]


def test_a_row_the_database_refuses_is_dropped_alone(domain, caplog):
    writer = audit.AuditWriter(domain)
    writer._pid = __import__("os").getpid()  # flushed here, not by the writer's thread
    marker = uuid.uuid4().hex
    writer._queue.extend([audit.row(f"key:{marker}", "GET /a", None, "200"),
                          audit.row(f"key:{marker}", "GET /b", None, "200", at=BadTime()),
                          audit.row(f"key:{marker}", "GET /c", None, "200")])
    assert writer.flush() == 2 and not writer._queue
    with db.transaction(domain) as conn:
        assert list(conn.execute(sa.text("SELECT action FROM audit_log WHERE actor = :a ORDER BY id"),
                                 {"a": f"key:{marker}"}).scalars()) == ["GET /a", "GET /c"]
    assert "audit row refused by the database, dropped" in caplog.text and "GET /b" in caplog.text


def test_an_outage_while_rows_are_written_one_by_one_requeues_only_the_rest(domain, monkeypatch):
    """A refused row, a written one, then the database goes away: only the rows not yet written
    wait (the written one was once queued again, and so written twice)."""
    import psycopg2

    writer = audit.AuditWriter(domain)
    writer._pid = __import__("os").getpid()
    marker = uuid.uuid4().hex
    rows = [audit.row(f"key:{marker}", "GET /refused", None, "200", at=BadTime()),
            audit.row(f"key:{marker}", "GET /written", None, "200"),
            audit.row(f"key:{marker}", "GET /waits", None, "200")]
    real_insert = audit._insert

    def insert(conn, batch):
        if len(batch) == 1 and batch[0]["action"] == "GET /waits":
            raise psycopg2.OperationalError("server closed the connection")
        return real_insert(conn, batch)
    monkeypatch.setattr(audit, "_insert", insert)
    writer._queue.extend(rows)
    assert writer.flush() == 1
    assert [r["action"] for r in writer._queue] == ["GET /waits"]
    monkeypatch.setattr(audit, "_insert", real_insert)
    assert writer.flush() == 1
    with db.transaction(domain) as conn:
        assert list(conn.execute(sa.text("SELECT action FROM audit_log WHERE actor = :a ORDER BY id"),
                                 {"a": f"key:{marker}"}).scalars()) == ["GET /written", "GET /waits"]


class BadTime:
    def isoformat(self) -> str:
        return "not a time"


def make_settings_like(settings, **changes):
    from common.settings import _replace

    return _replace(settings, **changes)


def test_items_survive_the_warm_tier_byte_for_byte(domain, seeded, tiers):
    cold = services.timeline(domain, seeded["company"], limit=50)
    warm, tier = tiers.page(seeded["company"], limit=50)
    assert tier == "warm" and json.dumps(warm, sort_keys=True) == json.dumps(cold, sort_keys=True)


def test_bodies_are_the_json_of_the_page_and_a_hot_hit_reuses_the_bytes(domain, seeded, tiers):
    cold = services.timeline(domain, seeded["company"], limit=6)
    warm, tier = tiers.page_body(seeded["company"], limit=6)
    hot, again = tiers.page_body(seeded["company"], limit=6)
    assert tier == "warm" and again == "hot" and hot is warm, "a hot hit is the stored bytes, not re-encoded"
    assert json.loads(warm) == cold == json.loads(timeline_cache.dumps(cold))
    filtered, _ = tiers.page_body(seeded["company"], limit=3, sources=["slack"], cursor=cold["next_cursor"])
    assert json.loads(filtered) == services.timeline(domain, seeded["company"], limit=3, sources=["slack"],
                                                     cursor=cold["next_cursor"])


def test_a_remembered_version_serves_warm_hits_until_a_change_arrives(domain, seeded, tiers):
    reads = []
    real_version = tiers._version
    tiers._version = lambda entity: reads.append(entity) or real_version(entity)
    tiers.page(seeded["bob"], limit=4)
    tiers.hot.clear()
    assert tiers.page(seeded["bob"], limit=4)[1] == "warm" and len(reads) == 1, \
        "while subscribed, a warm hit does not read the version again"
    seen = tiers.invalidations
    timeline_cache.invalidate(domain, [seeded["bob"]])
    applied(tiers, seen)
    tiers.page(seeded["bob"], limit=4)
    assert len(reads) == 2, "a change to the entity makes the remembered version stale"
    seen = tiers.invalidations
    timeline_cache.invalidate(domain)
    applied(tiers, seen)
    tiers.page(seeded["bob"], limit=4)
    assert len(reads) == 3, "so does a domain-wide change"


def test_a_change_arriving_during_the_version_read_wins(domain, seeded, tiers):
    """The version read races an invalidation: what was read must not be remembered as current."""
    real_version = tiers._version
    raced = []

    def racing(entity):
        version = real_version(entity)  # the value before the change...
        if not raced:
            tiers._apply(entity)  # ...and the change's message arrives before it is remembered
            raced.append(entity)
        return version

    tiers._version = racing
    tiers.page(seeded["alice"], limit=3)
    tiers.hot.clear()
    reads = []
    tiers._version = lambda entity: reads.append(entity) or real_version(entity)
    tiers.page(seeded["alice"], limit=3)
    assert reads == [seeded["alice"]], "the version was read again, not taken from before the change"


def test_a_key_lookup_is_cached_for_its_ttl_then_a_revoked_key_is_refused(domain):
    from api import auth

    key = auth.create_key(domain, "cached")
    store = auth.KeyStore(domain, ttl=0.5, listen=False)  # the TTL alone: a process away from Redis
    queries = []
    engine = db.engine_for(domain)
    listener = lambda *a, **k: queries.append(1)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert store.lookup(key) == ("cached", domain.domain) and len(queries) == 1
        with db.transaction(domain) as conn:
            conn.execute(sa.text("UPDATE api_keys SET revoked_at = now() WHERE name = 'cached'"))
        queries.clear()
        assert store.lookup(key) == ("cached", domain.domain) and queries == [], "served from the cache"
        time.sleep(0.6)
        assert store.lookup(key) is None, "once the entry expires the revocation is seen"
        assert store.lookup("pr_x.unknown") is None and store.lookup("pr_x.unknown") is None
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def test_a_revoked_key_is_refused_at_once_by_every_subscribed_process(domain):
    from api import auth

    key, other = auth.create_key(domain, "leaving"), auth.create_key(domain, "staying")
    stores = [auth.KeyStore(domain, ttl=3600) for _ in range(2)]  # two API processes' caches
    for store in stores:
        store.lookup(other)  # the first lookup in a process subscribes
        assert store._subscriber.listening.wait(10), "subscribed to the revocation channel"
        assert store.lookup(key) == ("leaving", domain.domain) and store.lookup(other) == ("staying", domain.domain)
    assert auth.revoke_keys(domain, "leaving") == 1
    for store in stores:
        deadline = time.monotonic() + 10
        while store.revocations == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.revocations == 1
        assert store.lookup(key) is None, "refused at once, not after the hour-long TTL of the cached entry"
        assert store.lookup(other) == ("staying", domain.domain)


def test_audit_rows_queued_by_gunicorn_workers_are_written_when_they_stop(domain, seeded, tmp_path):
    """Reads are audited in batches; stopping the server (SIGTERM) must not lose the queued rows."""
    from api import auth
    from common.cli import _process_env
    from tests.e2e.api_server import Client, running_api

    key = auth.create_key(domain, "batched")
    with running_api(_process_env(domain), tmp_path / "gunicorn.log", "-c", "deploy/gunicorn.conf.py",
                     "--workers", "2", "--worker-class", "gthread", "--threads", "4") as base:
        client = Client(base, key)
        for _ in range(40):
            assert client.call("GET", f"/api/v1/interactions/timeline?entity_id={seeded['alice']}&limit=3")[0] == 200
    with db.transaction(domain) as conn:
        written = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE actor = 'key:batched'")).scalar()
    assert written == 40


def test_gunicorn_worker_exit_hook_writes_the_queued_audit_rows(domain):
    import runpy
    from types import SimpleNamespace

    from tests.conftest import ROOT

    hooks = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    app = create_app(domain)
    writer = app.extensions["payready_audit"]
    writer._pid = __import__("os").getpid()  # queue here without the background thread flushing
    writer.record(audit.row("key:leaving", "GET /api/v1/interactions/timeline", None, "200"))
    writer.record(audit.row("key:leaving", "GET /api/v1/interactions/timeline", None, "200"))
    hooks["worker_exit"](None, SimpleNamespace(wsgi=app))
    with db.transaction(domain) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE actor = 'key:leaving'")).scalar() == 2
    hooks["worker_exit"](None, SimpleNamespace())  # a worker that never loaded the app: nothing to do


_FILTERS = st.fixed_dictionaries({}, optional={
    "sources": st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3, unique=True),
    "kinds": st.lists(st.sampled_from(sorted(set(KINDS.values()))), min_size=1, max_size=2, unique=True),
    # whole hours: the seed puts three interactions at each instant, so bounds fall on ties
    "start": st.integers(-2, 16).map(lambda h: BASE + dt.timedelta(hours=h)),
    "end": st.integers(-1, 16).map(lambda h: BASE + dt.timedelta(hours=h)),
})


@given(filters=_FILTERS, limit=st.integers(1, 9), entity=st.sampled_from(["company", "alice", "bob"]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_filters_walk_the_same_pages_from_every_tier(domain, seeded, tiers, filters, limit, entity):
    """Warm pages are spliced from Redis members and filtered in batches; whatever the filters,
    page size and ties on time, walking them must give exactly what Postgres gives."""
    if "start" in filters and "end" in filters and filters["start"] >= filters["end"]:
        filters["end"] = filters["start"] + dt.timedelta(hours=1)
    cold, _ = walk(None, domain, seeded[entity], limit=limit, **filters)
    warm, _ = walk(tiers, domain, seeded[entity], limit=limit, **filters)
    hot, _ = walk(tiers, domain, seeded[entity], limit=limit, **filters)
    assert warm == cold == hot
    assert cold == sorted(cold, reverse=True) and len(set(cold)) == len(cold)
