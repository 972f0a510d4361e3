"""common/prefix.py without a real Redis: the claim's outcome and its message, and what happens
when there is no Redis to ask."""
from __future__ import annotations

import logging

import pytest

from common import prefix, ratelimit
from common.settings import ConfigError, Settings


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def set(self, key: str, value: str, nx: bool = False) -> bool:
        if nx and key in self.data:
            return False
        self.data[key] = value.encode()
        return True

    def get(self, key: str):  # noqa: ANN201
        return self.data.get(key)

    def close(self) -> None:
        pass


@pytest.fixture()
def fake(monkeypatch):  # noqa: ANN001
    client = FakeRedis()
    monkeypatch.setattr(ratelimit, "client_for", lambda settings, **options: client)
    return client


def test_first_domain_claims_the_prefix_and_may_start_again(fake):  # noqa: ANN001
    s = Settings(domain="pay_ready", redis_url="redis://:secret@cache:6379/0")
    prefix.claim(s)
    prefix.claim(s)
    assert fake.data == {"pr:domain": b"pay_ready"}


def test_same_initials_fail_naming_the_variable_prefix_and_both_domains(fake):  # noqa: ANN001
    prefix.claim(Settings(domain="pay_ready", redis_url="redis://:secret@cache:6379/0"))
    with pytest.raises(ConfigError) as err:
        prefix.claim(Settings(domain="pay_roll", redis_url="redis://:secret@cache:6379/0"))
    message = str(err.value)
    assert message.startswith("PAYREADY_REDIS_PREFIX: prefix 'pr:' (derived from the domain's initials)")
    assert "'pay_ready'" in message and "set PAYREADY_REDIS_PREFIX for 'pay_roll'" in message
    assert "secret" not in message and "redis://:***@cache:6379/0" in message
    prefix.claim(Settings(domain="pay_roll", redis_url="redis://cache:6379/0", redis_prefix="proll:"))
    assert fake.data == {"pr:domain": b"pay_ready", "proll:domain": b"pay_roll"}


def test_no_redis_url_is_not_checked_and_unreachable_redis_only_warns(caplog):  # noqa: ANN001
    prefix.claim(Settings())  # no URL, no embedded stack: nothing to ask yet
    with caplog.at_level(logging.WARNING, logger="common.prefix"):
        prefix.claim(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert "not checked" in caplog.text and "'pr:'" in caplog.text
