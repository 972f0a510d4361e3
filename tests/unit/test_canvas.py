"""common/runs.build_canvas and common/celery_app: the run canvas, queues, routing and task policy.

Nothing here talks to a broker: the canvas is only built and inspected, never applied.
"""
from __future__ import annotations

import pytest
from celery import canvas

from common import celery_app, settings as settings_mod
from common.celery_app import (ANALYTICS, EMBED_PENDING, FINISH_RUN, PROCESS_SOURCE, RESOLVE_ENTITIES,
                               TRIGGER_SOURCE, WAIT_SOURCE, app, configure)
from common.runs import EMBED_SLOTS, build_canvas
from common.settings import load


def _restore_defaults():
    settings_mod.override(None)
    configure(app, load({}))


@pytest.fixture
def default_domain():
    s = load({})
    settings_mod.override(s)
    configure(app, s)
    yield s
    _restore_defaults()


@pytest.fixture
def paragon():
    s = load({"PAYREADY_DOMAIN": "paragon"})
    configure(app, s)
    settings_mod.override(s)
    yield s
    _restore_defaults()


def names(sig) -> list[str]:
    """Task names of a signature tree, depth first, in order."""
    if isinstance(sig, canvas._chord):
        return names(sig.tasks) + names(sig.body)
    if isinstance(sig, (canvas._chain, canvas.group)):
        return [n for t in sig.tasks for n in names(t)]
    if isinstance(sig, (list, tuple)):
        return [n for t in sig for n in names(t)]
    return [sig.task]


def walk(sig):
    yield sig
    if isinstance(sig, canvas._chord):
        yield from walk(sig.tasks)
        yield from walk(sig.body)
    elif isinstance(sig, (canvas._chain, canvas.group)):
        for t in sig.tasks:
            yield from walk(t)
    elif isinstance(sig, (list, tuple)):
        for t in sig:
            yield from walk(t)


# ----------------------------------------------------------------------------- canvas


def test_canvas_is_chord_of_one_chain_per_source(default_domain):
    c = build_canvas(default_domain, "run-1", ["gong", "slack", "hubspot"])
    assert isinstance(c, canvas._chord)
    header = c.tasks
    assert len(header) == 3
    for chain_sig, source in zip(header, ["gong", "slack", "hubspot"]):
        assert isinstance(chain_sig, canvas._chain)
        assert [t.task for t in chain_sig.tasks] == [TRIGGER_SOURCE, WAIT_SOURCE, PROCESS_SOURCE]
        for t in chain_sig.tasks:
            assert t.kwargs == {"run_id": "run-1", "source": source}
            assert t.immutable  # a phase never receives the previous phase's return value


def test_canvas_survives_json_serialisation(default_domain):
    # the broker carries the canvas as JSON: it must rebuild to the same tree of tasks
    import json

    c = build_canvas(default_domain, "run-1", ["gong", "slack"])
    rebuilt = canvas.Signature.from_dict(json.loads(json.dumps(c)), app=app)
    assert isinstance(rebuilt, canvas._chord)
    assert names(rebuilt) == names(c)
    assert len(rebuilt.tasks) == 2


def test_canvas_body_resolves_embeds_analyses_and_finishes(default_domain):
    c = build_canvas(default_domain, "run-7", ["gong"])
    body_names = names(c.body)
    slots = EMBED_SLOTS
    assert body_names == [RESOLVE_ENTITIES] + [EMBED_PENDING] * slots + [ANALYTICS, FINISH_RUN]
    # the embed tasks are a parallel group (a chord header), not a sequence
    embed_chords = [s for s in walk(c.body) if isinstance(s, canvas._chord)]
    assert len(embed_chords) == 1
    assert {t.task for t in embed_chords[0].tasks} == {EMBED_PENDING}
    assert sorted(t.kwargs["slot"] for t in embed_chords[0].tasks) == list(range(slots))
    assert names(embed_chords[0].body) == [ANALYTICS, FINISH_RUN]


def test_every_canvas_task_carries_the_run_id(default_domain):
    c = build_canvas(default_domain, "run-42", ["gong", "salesforce"])
    leaves = [s for s in walk(c) if isinstance(s, canvas.Signature) and not isinstance(
        s, (canvas._chain, canvas._chord, canvas.group))]
    assert len(leaves) == 2 * 3 + 1 + EMBED_SLOTS + 2
    assert all(s.kwargs["run_id"] == "run-42" for s in leaves)
    assert all(s.immutable for s in leaves)


def test_canvas_task_names_are_registered_tasks(default_domain):
    import embed_worker.tasks  # noqa: F401
    import ingest_worker.tasks  # noqa: F401
    import resolve_worker.tasks  # noqa: F401

    c = build_canvas(default_domain, "r", ["gong"])
    missing = [n for n in set(names(c)) if n not in app.tasks]
    assert not missing


# ----------------------------------------------------------------------------- queues and routing


def _queues_by_name():
    return {q.name: q for q in app.conf.task_queues}


def test_three_queues_each_with_own_direct_exchange(default_domain):
    queues = _queues_by_name()
    assert sorted(queues) == ["pay_ready.embed", "pay_ready.ingest", "pay_ready.resolve"]
    for name, q in queues.items():
        assert q.exchange.name == name
        assert q.exchange.type == "direct"
        assert q.routing_key == name
    assert len({q.exchange.name for q in queues.values()}) == 3
    assert app.conf.task_default_queue == "pay_ready.ingest"


@pytest.mark.parametrize("task_name, phase", [
    ("ingest_worker.tasks.x", "ingest"),
    (PROCESS_SOURCE, "ingest"),
    ("resolve_worker.tasks.x", "resolve"),
    (FINISH_RUN, "resolve"),
    ("embed_worker.tasks.x", "embed"),
    (EMBED_PENDING, "embed"),
])
def test_router_sends_tasks_by_module(default_domain, task_name, phase):
    route = app.amqp.router.route({}, task_name)
    expected = f"pay_ready.{phase}"
    assert route["queue"].name == expected
    assert route["routing_key"] == expected
    assert route["exchange"] == expected


def test_router_leaves_unknown_modules_alone(default_domain):
    (route_fn,) = app.conf.task_routes
    assert route_fn("celery.chord", (), {}, {}) is None
    assert route_fn("other.tasks.x", (), {}, {}) is None
    assert route_fn("ingest_worker.tasks.x", (), {}, {})["queue"] == "pay_ready.ingest"


def test_serialization_and_ack_policy(default_domain):
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert celery_app.PayReadyTask.acks_late is True
    assert celery_app.PayReadyTask.reject_on_worker_lost is True


def test_broker_keys_are_prefixed_by_domain(default_domain, paragon):
    assert app.conf.broker_transport_options["global_keyprefix"] == "paragon:celery:"


def test_other_domain_gets_its_own_queues_and_routes(paragon):
    queues = _queues_by_name()
    assert sorted(queues) == ["paragon.embed", "paragon.ingest", "paragon.resolve"]
    for name, q in queues.items():
        assert q.exchange.name == name and q.exchange.type == "direct" and q.routing_key == name
    (route_fn,) = app.conf.task_routes
    assert route_fn("resolve_worker.tasks.x", (), {}, {}) == {
        "queue": "paragon.resolve", "exchange": "paragon.resolve", "routing_key": "paragon.resolve"}
    assert app.amqp.router.route({}, "embed_worker.tasks.x")["routing_key"] == "paragon.embed"
    assert app.conf.task_default_queue == "paragon.ingest"


def test_defaults_restored_after_other_domain():
    # runs after the paragon tests in file order: the fixtures must have put pay_ready back
    assert settings_mod.get().domain == "pay_ready"
    assert sorted(_queues_by_name()) == ["pay_ready.embed", "pay_ready.ingest", "pay_ready.resolve"]
    (route_fn,) = app.conf.task_routes
    assert route_fn("ingest_worker.tasks.x", (), {}, {})["queue"] == "pay_ready.ingest"
