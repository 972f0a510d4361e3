"""`payready status` says `embedded: True` whenever it talks to the embedded stack of its data folder."""
from __future__ import annotations

import pytest

from common import embedded, status
from common.settings import load

pytestmark = pytest.mark.unit


def _stack_env(data_dir) -> dict:  # noqa: ANN001
    # the URLs an embedded stack under data_dir writes to stack.json (and `payready up` passes on)
    return {"PAYREADY_DATA_DIR": str(data_dir),
            "PAYREADY_DATABASE_URL": f"postgresql+psycopg2://postgres@/postgres?host={data_dir}/postgres",
            "PAYREADY_REDIS_URL": f"unix://{data_dir}/redis/redis.sock?db=0"}


@pytest.fixture
def no_probes(monkeypatch):  # noqa: ANN001
    for probe in ("_database", "_redis", "_broker"):
        monkeypatch.setattr(status, probe, lambda settings: {"ok": False, "error": "not probed"})


def test_urls_of_the_embedded_stack_count_as_embedded(tmp_path, no_probes):
    s = load(_stack_env(tmp_path))
    assert not s.embedded  # the URLs are set: nothing more to start or find
    assert embedded.in_use(s) and status.collect(s)["embedded"] is True


def test_a_relative_data_dir_is_the_same_stack(tmp_path, monkeypatch, no_probes):
    monkeypatch.chdir(tmp_path)
    s = load({**_stack_env(tmp_path / "data"), "PAYREADY_DATA_DIR": "data"})
    assert status.collect(s)["embedded"] is True


def test_configured_servers_are_not_embedded(tmp_path, no_probes):
    s = load({"PAYREADY_DATA_DIR": str(tmp_path), "PAYREADY_DATABASE_URL": "postgresql://app@db.internal/payready",
              "PAYREADY_REDIS_URL": "redis://cache.internal:6379/0"})
    assert status.collect(s)["embedded"] is False
    other = load({**_stack_env(tmp_path / "elsewhere"), "PAYREADY_DATA_DIR": str(tmp_path)})
    assert status.collect(other)["embedded"] is False  # another folder's stack


def test_no_urls_means_the_embedded_stack(tmp_path, no_probes):
    assert status.collect(load({"PAYREADY_DATA_DIR": str(tmp_path)}))["embedded"] is True
