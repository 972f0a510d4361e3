"""The shared rate limiter and circuit breaker against a real Redis, several processes included."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from common import ratelimit
from common.ratelimit import CircuitState, Limit, RateLimiter, RateLimitTimeout

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(stack_urls):  # noqa: ANN001
    c = redis.Redis.from_url(stack_urls.redis_url)
    yield c
    c.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


def waited_total(name: str) -> float:
    for metric in ratelimit.wait_counter().collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"limit": name}:
                return sample.value
    return 0.0


def test_grants_up_to_burst_then_waits(client, prefix):  # noqa: ANN001
    limiter = RateLimiter(client, prefix)
    lim = Limit("burst", rate=5, per_seconds=1, burst=3)  # one token every 0.2 s
    before = waited_total("burst")
    assert [limiter.try_acquire(lim) for _ in range(3)] == [0, 0, 0]
    wait = limiter.try_acquire(lim)
    assert 0.15 < wait <= 0.2
    waited = limiter.acquire(lim, timeout=2)
    assert 0.1 < waited < 0.4
    assert waited_total("burst") - before == pytest.approx(waited, abs=1e-6)
    # Sustained: four more take about 0.8 s.
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire(lim, timeout=2)
    assert 0.7 < time.monotonic() - started < 1.2
    # A timeout shorter than the wait raises at once and takes nothing.
    with pytest.raises(RateLimitTimeout):
        limiter.acquire(lim, timeout=0.01)
    assert 0.15 < limiter.wait_time(lim) <= 0.2


def test_refused_try_acquire_does_not_consume(client, prefix):  # noqa: ANN001
    limiter = RateLimiter(client, prefix)
    lim = Limit("peek", rate=1, per_seconds=1, burst=2)
    assert limiter.wait_time(lim) == 0 and limiter.wait_time(lim) == 0  # looking takes nothing
    assert limiter.try_acquire(lim) == 0 and limiter.try_acquire(lim) == 0
    first = limiter.try_acquire(lim)
    assert 0.9 < first <= 1.0
    for _ in range(20):  # refused calls must not push the next grant further out
        assert limiter.try_acquire(lim) <= first
    time.sleep(first + 0.02)
    assert limiter.try_acquire(lim) == 0
    assert limiter.try_acquire(lim) > 0.9


def test_acquire_all_is_atomic(client, prefix):  # noqa: ANN001
    limiter = RateLimiter(client, prefix)
    wide = Limit("wide", rate=1, per_seconds=60, burst=5)
    narrow = Limit("narrow", rate=1, per_seconds=60, burst=1)
    assert limiter.acquire_all([wide, narrow], timeout=2) == 0
    # narrow is empty: the combined request is refused and must take nothing from wide.
    assert limiter.try_acquire([wide, narrow]) > 50
    with pytest.raises(RateLimitTimeout):
        limiter.acquire_all([wide, narrow], timeout=0.2)
    assert [limiter.try_acquire(wide) for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.try_acquire(wide) > 0
    # The named limits work together too (gong per second AND per day).
    assert limiter.acquire_all(["gong", "gong_daily"], timeout=2) == 0
    assert limiter.try_acquire(["gong", "gong_daily"]) > 0.2  # 3/s paced: next in ~0.33 s
    assert client.exists(f"{prefix}ratelimit:gong", f"{prefix}ratelimit:gong_daily") == 2


WORKER = r"""
import json, sys, time
import redis
from common.ratelimit import Limit, RateLimiter, RateLimitTimeout
url, prefix, duration, rate, burst = sys.argv[1:6]
limiter = RateLimiter(redis.Redis.from_url(url), prefix)
lim = Limit("shared", float(rate), 1, burst=int(burst))
limiter.wait_time(lim)  # connect before the start
print("ready", flush=True)
start_at = sys.stdin.readline()  # one start time for all, sent once every process is ready
time.sleep(max(0.0, float(start_at) - time.time()))
stamps, end = [], float(start_at) + float(duration)
while time.time() < end:
    try:
        limiter.acquire(lim, timeout=max(0.0, end - time.time()))
    except RateLimitTimeout:
        break
    stamps.append(time.time())
print(json.dumps(stamps))
"""


def test_limit_holds_across_processes(stack_urls, prefix):  # noqa: ANN001
    rate, burst, duration, procs = 20, 5, 3.0, 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", WORKER, stack_urls.redis_url, prefix,
                                  str(duration), str(rate), str(burst)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(procs)]
    # A fixed head start is not enough on a loaded machine (interpreters took over 2 s to import):
    # start only once every process has said it is ready.
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    start_at = time.time() + 0.3
    for child in children:
        child.stdin.write(f"{start_at}\n")
        child.stdin.flush()
    per_process = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        per_process.append(json.loads(out))
    stamps = sorted(s for p in per_process for s in p)
    total = len(stamps)
    allowed = rate * duration + burst
    print(f"{procs} processes: {total} grants in {duration}s (allowed {allowed:.0f}); per process "
          f"{[len(p) for p in per_process]}; sustained {(total - burst) / duration:.2f}/s for {rate}/s")
    assert all(len(p) > 0 for p in per_process)  # every process took part
    assert total <= allowed + 1  # one grant of slack for a call in flight at the deadline
    assert total >= 0.85 * allowed  # the limiter is not merely throttling everyone to a halt
    # No one-second window sees more than burst + rate grants (a local limiter would give 4x).
    most = max(sum(1 for t in stamps[i:] if t < s + 1.0) for i, s in enumerate(stamps))
    assert most <= burst + rate  # GCRA bound burst + rate - 1, plus one of slack
    # After the burst the grants are spaced by the rate, across processes.
    tail = stamps[burst:]
    assert (len(tail) - 1) / (tail[-1] - tail[0]) == pytest.approx(rate, rel=0.1)


def test_circuit_state_is_shared(stack_urls, prefix):  # noqa: ANN001
    a_client, b_client = redis.Redis.from_url(stack_urls.redis_url), redis.Redis.from_url(stack_urls.redis_url)
    a = CircuitState(a_client, prefix, threshold=3, reset_seconds=0.5)
    b = CircuitState(b_client, prefix, threshold=3, reset_seconds=0.5)
    assert a.record_failure("gong") == 1 and b.record_failure("gong") == 2
    assert not a.is_open("gong") and not b.is_open("gong")
    b.record_success("gong")  # a success resets the count
    a.record_failure("gong"), b.record_failure("gong")
    assert not a.is_open("gong")
    b.record_failure("gong")
    assert a.is_open("gong") and b.is_open("gong") and not a.is_open("slack")
    assert 0 < a.open_for("gong") <= 0.5
    time.sleep(0.6)  # reset passes: calls may go through again (half-open) ...
    assert not a.is_open("gong")
    a.record_failure("gong")  # ... and one more failure opens it again for everyone
    assert b.is_open("gong")
    a.record_success("gong")
    assert not b.is_open("gong") and b.open_for("gong") == 0
    a_client.close(), b_client.close()


def test_idle_keys_expire(client, prefix):  # noqa: ANN001
    limiter = RateLimiter(client, prefix)
    lim = Limit("idle", rate=10, per_seconds=1, burst=2)
    limiter.acquire(lim, timeout=2), limiter.acquire(lim, timeout=2)
    key = f"{prefix}ratelimit:idle"
    assert 0 < client.pttl(key) <= 201
    limiter.wait_time(lim)  # looking neither writes nor extends
    assert client.pttl(key) <= 201
    breaker = CircuitState(client, prefix, threshold=1, reset_seconds=0.2)
    breaker.record_failure("x")
    assert 0 < client.pttl(f"{prefix}circuit:x:open") <= 200
    assert 0 < client.pttl(f"{prefix}circuit:x:failures") <= 400
    time.sleep(0.45)
    assert client.keys(f"{prefix}*") == []


def test_gong_daily_quota_holds_in_any_day(client, prefix):  # noqa: ANN001
    """Gong allows 10,000 calls a day: a full bucket plus a day of refill must not exceed it."""
    limiter = RateLimiter(client, prefix)
    daily = ratelimit.LIMITS["gong_daily"]
    granted = 0
    while limiter.try_acquire(daily) == 0:
        granted += 1
    assert granted >= daily.capacity  # (plus what refilled while the loop ran: one per ~9.6 s)
    wait = limiter.try_acquire(daily)  # then one grant per interval
    assert 0 < wait <= daily.interval_us / 1e6
    refill_in_a_day = daily.per_seconds * 1e6 // daily.interval_us
    assert daily.capacity + refill_in_a_day - 1 <= daily.most_per_window <= 10_000
    assert daily.rate >= 9_000, "the quota is still used, not just avoided"
