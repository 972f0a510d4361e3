"""Rate limits and circuit breakers shared by every process through Redis (DESIGN §9).

Each limit is a GCRA bucket kept in one Redis key ``<prefix>ratelimit:<name>`` holding the
"theoretical arrival time" in microseconds of the Redis server clock (``TIME``), so client clocks
never matter and every worker, on any machine, draws from the same bucket. A check-and-take is a
single Lua script, so it is atomic; several limits are checked and taken in one script
(:meth:`RateLimiter.acquire_all`), taking from none unless all grant. A key's TTL is the moment
its bucket is full again, when it means the same as no key, so idle keys vanish.

Guarantee: at most ``burst`` grants at once and ``rate / per_seconds`` sustained; any window of
``per_seconds`` sees at most ``burst + rate - 1`` grants, so ``burst=1`` paces strictly.
The keys of one ``acquire_all`` call must live on one node (no Redis Cluster slot spread).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterable, Optional, Union

import redis


@dataclass(frozen=True)
class Limit:
    """``rate`` grants per ``per_seconds``; ``burst`` at once (default: ``rate``)."""
    name: str
    rate: float
    per_seconds: float
    burst: Optional[int] = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.per_seconds <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError(f"limit {self.name!r}: rate, per_seconds and burst must be positive")

    @property
    def interval_us(self) -> int:
        """Microseconds between grants at the sustained rate."""
        return max(1, round(self.per_seconds * 1_000_000 / self.rate))

    @property
    def capacity(self) -> int:
        return int(self.burst if self.burst is not None else max(1, self.rate))

    @property
    def most_per_window(self) -> int:
        """The most grants any window of ``per_seconds`` can see: a full bucket, then the refill."""
        return self.capacity + int(self.rate) - 1


LIMITS: dict[str, Limit] = {l.name: l for l in (
    # Gong API: 3 requests/s per company (429 with Retry-After); paced so no second sees more.
    Limit("gong", 3, 1, burst=1),
    # Gong API daily quota: 10,000 requests per day; take together with "gong" (acquire_all).
    # A burst of 1,000 plus 9,001 refilled over the day keeps any 24 h window at 10,000.
    Limit("gong_daily", 9_001, 86_400, burst=1_000),
    # Slack Web API Tier 3 (conversations.history / replies): 50+ per minute, short bursts allowed.
    Limit("slack_tier3", 50, 60, burst=5),
    # HubSpot private apps: 100 requests per 10 s (the lowest tier of 100–200).
    Limit("hubspot", 100, 10, burst=10),
    # Airbyte public API: 429 without Retry-After, so stay polite at 1 request/s.
    Limit("airbyte", 1, 1, burst=1),
)}


class RateLimitTimeout(TimeoutError):
    """No token came within the timeout; nothing was taken."""


# KEYS: bucket keys. ARGV[1]: 1 = take when all grant, 0 = only look. ARGV[2i], ARGV[2i+1]:
# interval (µs) and burst of KEYS[i]. Returns {wait µs, index of the limit that binds (1-based)}.
_GCRA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local take = ARGV[1] == '1'
local wait, binding, new = 0, 0, {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  new[i] = tat + interval
  local allow_at = new[i] - burst * interval
  if allow_at - now > wait then wait, binding = allow_at - now, i end
end
if wait > 0 or not take then return {wait, binding} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%d', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1)
end
return {0, 0}
"""

# KEYS[1] failures, KEYS[2] open flag. ARGV[1] threshold, ARGV[2] reset ms. Returns failures.
_FAILURE = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
if n >= tonumber(ARGV[1]) then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return n
"""

LimitLike = Union[str, Limit]

_wait_counter = None


def wait_counter():  # noqa: ANN201 - prometheus_client.Counter
    """``<metric_prefix>rate_limit_wait_seconds_total{limit}``: from common.metrics if it has one."""
    global _wait_counter
    if _wait_counter is None:
        from common import metrics

        counter = getattr(metrics, "RATE_LIMIT_WAIT", None)
        if counter is None:
            from prometheus_client import REGISTRY, Counter

            from common import settings as settings_mod

            name = f"{settings_mod.get().metric_prefix}rate_limit_wait_seconds"
            try:
                counter = Counter(name, "Seconds spent waiting for shared rate limits", ["limit"])
            except ValueError:  # registered already (module reloaded)
                counter = REGISTRY._names_to_collectors[name]  # noqa: SLF001
        _wait_counter = counter
    return _wait_counter


class RateLimiter:
    """Shared limiter; ``key_prefix`` is the domain's Redis prefix (Settings.key_prefix)."""

    def __init__(self, redis_client: redis.Redis, key_prefix: str, limits: Optional[dict[str, Limit]] = None):
        self.redis = redis_client
        self.key_prefix = key_prefix
        self.limits = dict(LIMITS if limits is None else limits)
        self._script = redis_client.register_script(_GCRA)

    def key(self, name: str) -> str:
        return f"{self.key_prefix}ratelimit:{name}"

    def resolve(self, limit: LimitLike) -> Limit:
        if isinstance(limit, Limit):
            return limit
        try:
            return self.limits[limit]
        except KeyError:
            raise KeyError(f"unknown rate limit {limit!r}; known: {', '.join(sorted(self.limits))}") from None

    def _call(self, limits: list[Limit], take: bool) -> tuple[float, Optional[Limit]]:
        args: list[object] = ["1" if take else "0"]
        for lim in limits:
            args += [lim.interval_us, lim.capacity]
        wait_us, binding = self._script(keys=[self.key(l.name) for l in limits], args=args)
        return int(wait_us) / 1_000_000, (limits[int(binding) - 1] if int(binding) else None)

    def _list(self, limits: Union[LimitLike, Iterable[LimitLike]]) -> list[Limit]:
        items = [limits] if isinstance(limits, (str, Limit)) else list(limits)
        if not items:
            raise ValueError("no limits given")
        return [self.resolve(l) for l in items]

    def try_acquire(self, limits: Union[LimitLike, Iterable[LimitLike]]) -> float:
        """Take a token (of every limit given) if all grant now and return 0; else return the
        seconds until they would, taking nothing."""
        return self._call(self._list(limits), take=True)[0]

    def wait_time(self, limits: Union[LimitLike, Iterable[LimitLike]]) -> float:
        """Seconds until a token would be granted (0 = now); never takes one."""
        return self._call(self._list(limits), take=False)[0]

    def acquire(self, limit: LimitLike, *, timeout: Optional[float] = None) -> float:
        """Block until granted; return the seconds waited. Raises RateLimitTimeout."""
        return self.acquire_all([limit], timeout=timeout)

    def acquire_all(self, limits: Iterable[LimitLike], *, timeout: Optional[float] = None) -> float:
        """Take one token of every limit at once (none unless all grant), blocking until then."""
        items = self._list(limits)
        started = time.monotonic()
        waited = 0.0
        while True:
            wait, binding = self._call(items, take=True)
            if wait <= 0:
                return waited
            if timeout is not None and waited + wait > timeout:
                raise RateLimitTimeout(
                    f"rate limit {binding.name!r} needs {wait:.3f}s more, over the {timeout}s timeout")
            # A little jitter so workers woken together do not all collide again.
            time.sleep(wait + random.uniform(0, min(0.01, wait / 10)))
            now = time.monotonic()
            wait_counter().labels(limit=binding.name).inc(now - started - waited)
            waited = now - started


class CircuitState:
    """A circuit breaker shared in Redis: ``threshold`` failures in a row open it for
    ``reset_seconds``; then it lets calls through, and one more failure opens it again (the
    failure count outlives the open state), while a success closes it for good."""

    def __init__(self, redis_client: redis.Redis, key_prefix: str, *, threshold: int = 5,
                 reset_seconds: float = 30.0):
        if threshold < 1 or reset_seconds <= 0:
            raise ValueError("threshold and reset_seconds must be positive")
        self.redis = redis_client
        self.key_prefix = key_prefix
        self.threshold = threshold
        self.reset_ms = max(1, round(reset_seconds * 1000))
        self._failure = redis_client.register_script(_FAILURE)

    def _keys(self, name: str) -> list[str]:
        base = f"{self.key_prefix}circuit:{name}"
        return [f"{base}:failures", f"{base}:open"]

    def record_failure(self, name: str) -> int:
        """Count a failure; returns the failures in a row (opens the breaker at the threshold)."""
        return int(self._failure(keys=self._keys(name), args=[self.threshold, self.reset_ms]))

    def record_success(self, name: str) -> None:
        self.redis.delete(*self._keys(name))

    def is_open(self, name: str) -> bool:
        return bool(self.redis.exists(self._keys(name)[1]))

    def open_for(self, name: str) -> float:
        """Seconds until an open breaker lets calls through again (0 when closed)."""
        ms = self.redis.pttl(self._keys(name)[1])
        return max(ms, 0) / 1000


def client_for(settings, **options: object) -> redis.Redis:  # noqa: ANN001 - common.settings.Settings
    """The domain's Redis client; ``options`` go to ``redis.Redis.from_url`` (socket_timeout=...)."""
    url = settings.redis_url
    if not url:
        from common import embedded

        url = embedded.resolve_urls(settings).redis_url
    if not url:
        raise ValueError("PAYREADY_REDIS_URL is unset and no embedded stack is running")
    return redis.Redis.from_url(url, **options)


def for_settings(settings=None) -> RateLimiter:  # noqa: ANN001
    """The domain's shared limiter (process-wide settings when none are given)."""
    if settings is None:
        from common import settings as settings_mod

        settings = settings_mod.get()
    return RateLimiter(client_for(settings), settings.key_prefix)


def circuits_for(settings=None, **kwargs: float) -> CircuitState:  # noqa: ANN001
    """The domain's shared circuit breakers (threshold=, reset_seconds=)."""
    if settings is None:
        from common import settings as settings_mod

        settings = settings_mod.get()
    return CircuitState(client_for(settings), settings.key_prefix, **kwargs)
