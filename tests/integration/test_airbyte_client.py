"""AirbyteClient against a local fake of the Airbyte public API (tests/fakes/airbyte_server.py)."""
from __future__ import annotations

import json
import logging
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest_worker.airbyte_client import AirbyteClient, AirbyteError, CircuitBreaker, CircuitOpenError, Job
from tests.fakes.airbyte_server import FakeAirbyteServer

CONN = "e735894a-e773-4938-969f-45f53957b75b"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server():
    with FakeAirbyteServer() as srv:
        yield srv


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(server: FakeAirbyteServer, sleeps: Sleeps, **kw) -> AirbyteClient:
    kw.setdefault("timeout", 5)
    return AirbyteClient(server.base_url, server.client_id, server.client_secret, sleep=sleeps, **kw)


# --- token exchange ----------------------------------------------------------------------------

def test_token_json_body_and_bearer(server, sleeps):
    job = make(server, sleeps).trigger_sync(CONN)
    assert isinstance(job.job_id, int) and job.status == "pending" and job.connection_id == CONN
    (tok,) = server.requests_to("/v1/applications/token")
    assert tok["headers"]["content-type"] == "application/json"
    assert json.loads(tok["body"]) == {"client_id": "test-client", "client_secret": "test-secret",
                                       "grant-type": "client_credentials"}
    (post,) = server.requests_to("/v1/jobs", "POST")
    assert post["status"] == 200 and post["headers"]["authorization"] == "Bearer <redacted>"
    assert json.loads(post["body"]) == {"connectionId": CONN, "jobType": "sync"}


@pytest.mark.parametrize("reject_status", [415, 400])
def test_token_falls_back_to_form(server, sleeps, reject_status):
    server.json_token_status = reject_status
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    first, second = server.requests_to("/v1/applications/token")
    assert first["status"] == reject_status and first["headers"]["content-type"] == "application/json"
    assert second["status"] == 200
    assert second["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(second["body"]) == {"grant_type": ["client_credentials"], "client_id": ["test-client"],
                                        "client_secret": ["test-secret"]}
    # The form path is remembered: the next token goes straight to form encoding.
    server.revoke_tokens()
    assert client.get_job(job.job_id).job_id == job.job_id
    assert [r["headers"]["content-type"] for r in server.requests_to("/v1/applications/token")][2:] == [
        "application/x-www-form-urlencoded"]


def test_wrong_credentials_raise_401_without_retry(server, sleeps):
    client = AirbyteClient(server.base_url, "test-client", "wrong-secret", sleep=sleeps)
    with pytest.raises(AirbyteError) as err:
        client.trigger_sync(CONN)
    assert err.value.status == 401 and "invalid client credentials" in str(err.value)
    assert "wrong-secret" not in str(err.value)
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize("expires_in,still_cached,refreshed", [(900, 719.0, 721.0), (120, 59.0, 61.0)])
def test_token_refreshed_early_per_expires_in(server, sleeps, expires_in, still_cached, refreshed):
    # 900 s: 80 % (720) is earlier than 60 s before (840); 120 s: 60 s before (60) is earlier than 96.
    server.token_expires_in = expires_in
    clock = FakeClock()
    client = make(server, sleeps, clock=clock)
    job = client.trigger_sync(CONN)
    clock.now += still_cached
    client.get_job(job.job_id)
    assert len(server.requests_to("/v1/applications/token")) == 1
    clock.now += refreshed - still_cached
    client.get_job(job.job_id)
    assert len(server.requests_to("/v1/applications/token")) == 2
    assert [r["status"] for r in server.requests_to("/v1/jobs")] == [200, 200, 200]


def test_401_refreshes_token_once_and_retries(server, sleeps):
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    server.expire_tokens()
    assert client.get_job(job.job_id).job_id == job.job_id
    assert [r["status"] for r in server.requests_to(f"/v1/jobs/{job.job_id}")] == [401, 200]
    assert len(server.requests_to("/v1/applications/token")) == 2


def test_persistent_401_gives_up_after_one_refresh(server, sleeps):
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    server.fail_next(5, 401, path="/jobs")
    with pytest.raises(AirbyteError) as err:
        client.get_job(job.job_id)
    assert err.value.status == 401
    assert len(server.requests_to(f"/v1/jobs/{job.job_id}")) == 2
    assert len(server.requests_to("/v1/applications/token")) == 2 and sleeps == []


# --- 409: attach to the running sync ----------------------------------------------------------

def test_409_attaches_to_running_sync(server, sleeps):
    client = make(server, sleeps)
    first = client.trigger_sync(CONN)
    client.get_job(first.job_id)  # now running
    again = client.trigger_sync(CONN)
    assert again.attached and not first.attached
    assert again.job_id == first.job_id and again.status == "running" and again.job_type == "sync"
    assert [r["status"] for r in server.requests_to("/v1/jobs", "POST")] == [200, 409]
    (listing,) = [r for r in server.requests_to("/v1/jobs?", "GET")]
    assert parse_qs(urlsplit(listing["path"]).query) == {"connectionId": [CONN], "limit": ["1"],
                                                         "orderBy": ["createdAt|DESC"]}
    assert len([j for j in server.jobs.values() if j["connectionId"] == CONN]) == 1


def test_409_falls_back_to_listing_without_order_by(server, sleeps):
    server.reject_order_by = True
    server.add_job(CONN, statuses=["succeeded"])
    server.add_job(CONN, statuses=["cancelled"])
    running = server.add_job(CONN, statuses=["incomplete"])
    server.add_job("other-connection", statuses=["running"])
    job = make(server, sleeps).trigger_sync(CONN)
    assert job.attached and job.job_id == running and job.status == "incomplete"
    listings = server.requests_to("/v1/jobs?", "GET")
    assert [r["status"] for r in listings] == [400, 200]
    assert "orderBy" not in parse_qs(urlsplit(listings[1]["path"]).query)


def test_409_with_only_a_running_reset_is_an_error(server, sleeps):
    server.add_job(CONN, job_type="reset", statuses=["running"])
    with pytest.raises(AirbyteError) as err:
        make(server, sleeps).trigger_sync(CONN)
    assert err.value.status == 409 and "already running" in str(err.value)


# --- retries, backoff, errors -----------------------------------------------------------------

def test_429_without_retry_after_backs_off_with_full_jitter(server, sleeps):
    client = make(server, sleeps, backoff_base=1.0, backoff_cap=3.0, jitter=lambda: 0.5)
    client.trigger_sync(CONN)  # token first, so failures hit /jobs
    server.rate_limit_next(4)
    job = client.get_job(1001)
    assert job.job_id == 1001
    assert sleeps == [0.5, 1.0, 1.5, 1.5]  # jitter * min(cap, base * 2**n)
    assert [r["status"] for r in server.requests_to("/v1/jobs/1001")] == [429, 429, 429, 429, 200]
    assert all("retry-after" not in r["headers"] for r in server.requests)


def test_backoff_delays_stay_within_full_jitter_bounds(server, sleeps):
    client = make(server, sleeps, max_tries=6, backoff_base=0.5, backoff_cap=4.0)
    client.trigger_sync(CONN)
    server.rate_limit_next(5)
    client.get_job(1001)
    assert len(sleeps) == 5
    for n, delay in enumerate(sleeps):
        assert 0.0 <= delay <= min(4.0, 0.5 * 2 ** n)
    assert len(set(sleeps)) > 1  # randomised, not a fixed schedule


def test_retry_after_is_honoured(server, sleeps):
    client = make(server, sleeps, jitter=lambda: 0.0)
    client.trigger_sync(CONN)
    server.fail_next(1, 429, retry_after="7")
    client.get_job(1001)
    assert sleeps == [7.0]


def test_5xx_retries_then_gives_up(server, sleeps):
    client = make(server, sleeps, max_tries=3, jitter=lambda: 1.0)
    client.trigger_sync(CONN)
    server.fail_next(10, 503)
    with pytest.raises(AirbyteError) as err:
        client.get_job(1001)
    assert err.value.status == 503 and "scripted 503" in err.value.message
    assert len(server.requests_to("/v1/jobs/1001")) == 3 and sleeps == [1.0, 2.0]


def test_5xx_then_success(server, sleeps):
    client = make(server, sleeps)
    server.server_error_next(2, 502)
    assert client.trigger_sync(CONN).status == "pending"
    assert [r["status"] for r in server.requests] == [502, 502, 200, 200]  # token retried, then POST
    assert len(sleeps) == 2


def test_connection_errors_are_retried_then_raised(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AirbyteClient(f"http://127.0.0.1:{port}/v1", "id", "secret", sleep=sleeps, max_tries=3, timeout=2)
    with pytest.raises(AirbyteError) as err:
        client.get_job(1)
    assert err.value.status is None and "connection error" in err.value.message and len(sleeps) == 2


def test_other_4xx_fail_at_once_with_problem_detail(server, sleeps):
    client = make(server, sleeps)
    with pytest.raises(AirbyteError) as err:
        client.get_job(424242)
    assert err.value.status == 404 and "job 424242 not found" in err.value.message
    assert err.value.problem_type.endswith("#not-found")
    with pytest.raises(AirbyteError) as err:
        client.trigger_sync("")
    assert err.value.status == 400 and "connectionId is required" in err.value.message
    assert sleeps == [] and [r["status"] for r in server.requests_to("/v1/jobs")] == [404, 400]


# --- job statuses ------------------------------------------------------------------------------

def test_default_progression_pending_running_succeeded(sleeps):
    with FakeAirbyteServer(polls_per_step=2) as server:
        client = make(server, sleeps)
        job = client.trigger_sync(CONN)
        seen = [job.status] + [client.get_job(job.job_id).status for _ in range(5)]
    assert seen == ["pending", "pending", "running", "running", "succeeded", "succeeded"]


def test_scripted_statuses_only_terminal_ones_are_final(server, sleeps):
    server.script_next_job(["queued", "running", "incomplete", "running", "succeeded"])
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    polled = [job] + [client.get_job(job.job_id) for _ in range(4)]
    assert [(j.status, j.is_final) for j in polled] == [
        ("queued", False), ("running", False), ("incomplete", False), ("running", False), ("succeeded", True)]
    assert polled[-1].rows_synced == 42 and polled[-1].bytes_synced == 4200


def test_unknown_status_is_kept_and_not_final(server, sleeps):
    server.script_next_job(["weird", "CANCELLED"])
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    assert job.status == "weird" and not job.is_final
    again = client.trigger_sync(CONN)  # weird is not final: the connection is still busy -> attach
    assert again.attached and again.job_id == job.job_id and again.status == "weird"
    done = client.get_job(job.job_id)
    assert done.status == "cancelled" and done.is_final


@pytest.mark.parametrize("status,final", [("succeeded", True), ("failed", True), ("cancelled", True),
                                          ("Failed", True), ("pending", False), ("queued", False),
                                          ("running", False), ("incomplete", False), ("weird", False),
                                          ("", False)])
def test_is_final_set(status, final):
    assert Job.from_api({"jobId": 1, "status": status, "jobType": "sync"}).is_final is final


def test_id_quirk_tolerated(server, sleeps):
    server.id_quirk = True
    client = make(server, sleeps)
    job = client.trigger_sync(CONN)
    assert isinstance(job.job_id, int) and job.connection_id == CONN  # filled from the request
    assert client.get_job(job.job_id).job_id == job.job_id
    uuid_job = Job.from_api({"id": "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826", "status": "running", "jobType": "sync"})
    assert uuid_job.job_id == "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826" and not uuid_job.is_final


# --- circuit breaker ---------------------------------------------------------------------------

def test_breaker_opens_after_threshold_and_blocks_requests(server, sleeps):
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=60, clock=clock)
    client = make(server, sleeps, max_tries=1, breaker=breaker)
    client.trigger_sync(CONN)
    server.fail_next(100, 500)
    for _ in range(2):
        with pytest.raises(AirbyteError) as err:
            client.get_job(1001)
        assert err.value.status == 500
    assert breaker.state == "closed"
    with pytest.raises(AirbyteError):
        client.get_job(1001)
    assert breaker.state == "open"
    seen = len(server.requests)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            client.get_job(1001)
    clock.now += 59
    with pytest.raises(CircuitOpenError):
        client.trigger_sync(CONN)
    assert len(server.requests) == seen


def test_breaker_half_open_recovers_or_reopens(server, sleeps):
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=60, clock=clock)
    client = make(server, sleeps, max_tries=5, breaker=breaker, jitter=lambda: 0.0)
    client.trigger_sync(CONN)
    server.fail_next(100, 503)
    with pytest.raises(CircuitOpenError):  # the retry loop itself stops once the breaker opens
        client.get_job(1001)
    assert breaker.state == "open" and len(server.requests_to("/v1/jobs/1001")) == 2
    clock.now += 60
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpenError):  # the one trial fails -> open again, no second request
        client.get_job(1001)
    assert breaker.state == "open" and len(server.requests_to("/v1/jobs/1001")) == 3
    server.clear_failures()
    clock.now += 60
    assert client.get_job(1001).job_id == 1001
    assert breaker.state == "closed"
    assert client.get_job(1001).job_id == 1001


def test_breaker_half_open_admits_a_single_trial():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=10, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as err:
        breaker.before_call()
    assert err.value.retry_in == 10
    clock.now += 10
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpenError):  # a concurrent second caller is refused while it runs
        breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.before_call()


def test_before_request_hook_runs_per_attempt_and_can_block(server, sleeps):
    calls = []
    client = make(server, sleeps, before_request=lambda: calls.append(1))
    server.rate_limit_next(1)
    client.trigger_sync(CONN)
    assert len(calls) == len(server.requests) == 3

    def deny() -> None:
        raise RuntimeError("over shared budget")

    blocked = make(server, sleeps, before_request=deny)
    before = len(server.requests)
    with pytest.raises(RuntimeError):
        blocked.get_job(1001)
    assert len(server.requests) == before


def test_secrets_and_tokens_never_logged(server, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    server.client_secret = "s3cr3t-value"
    client = AirbyteClient(server.base_url, server.client_id, "s3cr3t-value", sleep=sleeps)
    server.json_token_status = 415
    job = client.trigger_sync(CONN)
    server.expire_tokens()
    server.rate_limit_next(1)
    client.get_job(job.job_id)
    server.fail_next(5, 500)
    with pytest.raises(AirbyteError) as err:
        client.get_job(job.job_id)
    assert server.tokens and caplog.records
    for secret in ["s3cr3t-value", *server.tokens]:
        assert secret not in caplog.text and secret not in str(err.value) and secret not in repr(client)
    # Even a server (or proxy) that echoes credentials back does not get them into our errors.
    (current,) = [t for t, exp in server.tokens.items() if exp > server.clock()]
    server.fail_next(1, 400, detail=f"bad request from s3cr3t-value with token {current}")
    with pytest.raises(AirbyteError) as err:
        client.get_job(job.job_id)
    assert err.value.status == 400 and "***" in err.value.message
    assert "s3cr3t-value" not in str(err.value) and current not in str(err.value)
