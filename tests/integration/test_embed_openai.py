"""The embed phase on the OpenAI path, against the local stand-in of the embeddings API and the
real Redis limiter: 384-dimension vectors stored with their model, PII masked before it leaves,
the shared rate limiter consulted, and a server error retried."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import redis
import sqlalchemy as sa

from common import db, pii, ratelimit
from common.settings import _replace
from embed_worker import pipeline
from tests.fakes.openai_server import FakeOpenAIServer, fake_vector
from tests.integration.chunk_seed import add_interaction, scalar

T0 = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)


@pytest.fixture()
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def test_openai_embed_phase_masks_limits_retries_and_records_the_model(domain, server, monkeypatch):
    # a slow bucket keeps its Redis key for an hour, so the test can see it was drawn from
    monkeypatch.setattr(pipeline, "OPENAI_EMBEDDINGS_LIMIT", ratelimit.Limit("openai_embeddings", 1, 3600, burst=10))
    settings = _replace(domain, embedder="openai", openai_api_key="test-key", openai_base_url=server.base_url,
                        embed_batch_size=2)
    for i in range(3):
        add_interaction(settings, source="hubspot", source_id=f"o{i}", kind="email", occurred_at=T0,
                        body=f"Reach me at jane.doe{i}@acme.com about the renewal, or +1 415 555 013{i}.")
    server.fail_next(1, 503)
    stats = pipeline.embed_pending(settings)
    assert stats.chunks == 3 and stats.batches == 2
    assert server.statuses == [503, 200, 200]
    assert all(r["model"] == "text-embedding-3-small" and r["dimensions"] == 384 for r in server.requests)
    sent = [t for r in server.requests[1:] for t in r["input"]]
    assert len(sent) == 3 and all("[EMAIL]" in t and "[PHONE]" in t for t in sent)
    assert "acme.com" not in repr(server.requests) and "555" not in repr(server.requests)

    tag = "text-embedding-3-small@openai-384"
    assert scalar(settings, "SELECT count(*) FROM chunk_vectors WHERE model = :m", m=tag) == 3
    with db.transaction(settings) as conn:
        text, stored = conn.execute(sa.text(
            "SELECT c.text, CAST(cv.embedding AS text) FROM chunks c JOIN chunk_vectors cv ON cv.chunk_id = c.id "
            "ORDER BY c.id LIMIT 1")).one()
    expected = np.asarray(fake_vector(pii.mask(text), 384))
    np.testing.assert_allclose(np.asarray(eval(stored)), expected, atol=1e-5)  # noqa: S307 - "[...]" literal

    key = f"{settings.key_prefix}ratelimit:{pipeline.OPENAI_EMBEDDINGS_LIMIT.name}"
    client = redis.Redis.from_url(settings.redis_url)
    assert client.exists(key), "the shared limiter was consulted"
    limiter = ratelimit.RateLimiter(client, settings.key_prefix)
    taken = sum(1 for _ in range(10) if limiter.try_acquire(pipeline.OPENAI_EMBEDDINGS_LIMIT) <= 0)
    assert taken == 10 - 3  # one token per request, the failed one included
