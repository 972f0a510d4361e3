"""The Airbyte client as the ingest tasks use it: one per process, built from settings."""
from __future__ import annotations

import functools
import urllib.error

import redis

from common.settings import Settings
from ingest_worker.airbyte_client import AirbyteClient, AirbyteError, CircuitBreaker, CircuitOpenError


class AirbyteUnavailable(AirbyteError):
    """Transient: connection errors, 429 and 5xx after the client's own retries, an open breaker."""


# Exceptions after which the task retries later (Celery countdown) rather than failing the run.
RETRYABLE = (AirbyteUnavailable, CircuitOpenError, urllib.error.URLError, ConnectionError, TimeoutError)


@functools.lru_cache(maxsize=4)
def _client(url: str, client_id: str, secret: str, redis_url: str, prefix: str) -> AirbyteClient:
    from common import ratelimit

    limiter = ratelimit.RateLimiter(redis.Redis.from_url(redis_url), prefix)
    # every worker's Airbyte calls share one polite budget (Airbyte sheds load with bare 429s)
    return _TransientAware(url, client_id, secret, breaker=CircuitBreaker(failure_threshold=5, reset_after=60),
                           before_request=functools.partial(limiter.acquire, "airbyte", timeout=120))


def client(settings: Settings) -> AirbyteClient:
    return _client(settings.airbyte_api_url, settings.airbyte_client_id, settings.airbyte_client_secret,
                   settings.redis_url, settings.key_prefix)


class _TransientAware(AirbyteClient):
    """Re-raises retryable HTTP outcomes as AirbyteUnavailable so tasks can tell them apart."""

    def trigger_sync(self, connection_id: str):  # noqa: ANN201
        return self._transient(super().trigger_sync, connection_id)

    def get_job(self, job_id):  # noqa: ANN001, ANN201
        return self._transient(super().get_job, job_id)

    @staticmethod
    def _transient(fn, *args):  # noqa: ANN001, ANN205
        try:
            return fn(*args)
        except CircuitOpenError:
            raise
        except AirbyteError as exc:
            if exc.status is None or exc.status == 429 or exc.status >= 500:
                raise AirbyteUnavailable(exc.status, exc.message) from exc
            raise
