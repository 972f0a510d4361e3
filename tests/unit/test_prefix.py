"""common/prefix.py when there is no Redis to ask. The claim itself, its message and every start-up
point that makes it run against the real Redis: tests/integration/test_prefix_claim.py."""
from __future__ import annotations

import logging


from common import prefix
from common.settings import Settings


def test_no_redis_url_is_not_checked_and_unreachable_redis_only_warns(caplog):  # noqa: ANN001
    prefix.claim(Settings())  # no URL, no embedded stack: nothing to ask yet
    with caplog.at_level(logging.WARNING, logger="common.prefix"):
        prefix.claim(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert "not checked" in caplog.text and "'pr:'" in caplog.text
