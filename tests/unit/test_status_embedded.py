"""`embedded.in_use`, what `payready status` reports as `embedded`: true whenever the settings talk
to the embedded stack of their data folder. Pure; the report itself, against a live `payready up`
stack, is checked in tests/e2e/test_up.py."""
from __future__ import annotations

import pytest

from common import embedded
from common.settings import load

pytestmark = pytest.mark.unit


def _stack_env(data_dir) -> dict:  # noqa: ANN001
    # the URLs an embedded stack under data_dir writes to stack.json (and `payready up` passes on)
    return {"PAYREADY_DATA_DIR": str(data_dir),
            "PAYREADY_DATABASE_URL": f"postgresql+psycopg2://postgres@/postgres?host={data_dir}/postgres",
            "PAYREADY_REDIS_URL": f"unix://{data_dir}/redis/redis.sock?db=0"}


def test_urls_of_the_embedded_stack_count_as_embedded(tmp_path):
    s = load(_stack_env(tmp_path))
    assert not s.embedded  # the URLs are set: nothing more to start or find
    assert embedded.in_use(s)


def test_a_relative_data_dir_is_the_same_stack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load({**_stack_env(tmp_path / "data"), "PAYREADY_DATA_DIR": "data"})
    assert embedded.in_use(s)


def test_configured_servers_are_not_embedded(tmp_path):
    s = load({"PAYREADY_DATA_DIR": str(tmp_path), "PAYREADY_DATABASE_URL": "postgresql://app@db.internal/payready",
              "PAYREADY_REDIS_URL": "redis://cache.internal:6379/0"})
    assert not embedded.in_use(s)
    other = load({**_stack_env(tmp_path / "elsewhere"), "PAYREADY_DATA_DIR": str(tmp_path)})
    assert not embedded.in_use(other)  # another folder's stack


def test_no_urls_means_the_embedded_stack(tmp_path):
    assert embedded.in_use(load({"PAYREADY_DATA_DIR": str(tmp_path)}))
