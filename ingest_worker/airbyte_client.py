"""A small client for the Airbyte public API v1: trigger a connection's sync and poll its job.

Stdlib only (``urllib.request``). Auth is the *Application* client-credentials flow: the token from
``POST /applications/token`` is cached and refreshed early (80 % of ``expires_in`` or 60 s before
expiry, whichever is earlier); a 401 from an API call refreshes it once and retries. 429, 5xx and
connection errors are retried with capped exponential backoff and full jitter (``Retry-After`` is
honoured when sent; Airbyte's load-shed 429 has none). An optional :class:`CircuitBreaker` fails
calls fast while Airbyte is down. Secrets and tokens are never logged nor put in error messages.
"""
from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

log = logging.getLogger("payready.airbyte")

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
KNOWN_STATUSES = frozenset({"pending", "queued", "running", "incomplete"}) | FINAL_STATUSES
DEFAULT_TOKEN_LIFETIME = 180  # seconds, used when the token response has no usable expires_in


class AirbyteError(Exception):
    """An Airbyte call failed. ``status`` is the HTTP status (None for connection errors)."""

    def __init__(self, status: Optional[int], message: str, *, problem_type: Optional[str] = None) -> None:
        super().__init__(f"Airbyte {status}: {message}" if status is not None else f"Airbyte: {message}")
        self.status = status
        self.message = message
        self.problem_type = problem_type


class CircuitOpenError(AirbyteError):
    """The circuit breaker is open: no request was sent."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(None, f"circuit open, next trial in {max(retry_in, 0.0):.1f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    """closed -> open after ``failure_threshold`` consecutive failures -> half-open after
    ``reset_after`` seconds (one trial call) -> closed on success, open again on failure."""

    def __init__(self, failure_threshold: int = 5, reset_after: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: Optional[float] = None
        self._trial = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.reset_after else "open"

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self._trial:
                self._trial = True
                return
            assert self._opened_at is not None
            raise CircuitOpenError(self._opened_at + self.reset_after - self._clock())

    def release(self) -> None:
        """A permitted call did not happen (e.g. the pre-request hook raised)."""
        with self._lock:
            self._trial = False

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self.failure_threshold:
                self._opened_at, self._trial = self._clock(), False


@dataclass
class Job:
    job_id: Union[int, str]  # int per spec; the raw value if a server sends a non-numeric ``id``
    status: str  # lower-case for known statuses; unknown values kept as sent
    job_type: Optional[str] = None
    connection_id: Optional[str] = None
    start_time: Optional[str] = None
    rows_synced: Optional[int] = None
    bytes_synced: Optional[int] = None
    attached: bool = False  # True when trigger_sync found a sync already running and returned it
    last_updated_at: Optional[str] = None
    duration: Optional[str] = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_api(cls, data: dict, *, attached: bool = False, connection_id: Optional[str] = None) -> "Job":
        raw_id = data.get("jobId", data.get("id"))  # the spec's examples say ``id``
        if raw_id is None:
            raise AirbyteError(None, "job response without jobId")
        try:
            job_id: Union[int, str] = int(raw_id)
        except (TypeError, ValueError):
            job_id = str(raw_id)
        raw_status = str(data.get("status") or "").strip()
        status = raw_status.lower() if raw_status.lower() in KNOWN_STATUSES else raw_status
        job_type = data.get("jobType")
        return cls(job_id=job_id, status=status, job_type=job_type.lower() if isinstance(job_type, str) else None,
                   connection_id=data.get("connectionId") or connection_id, start_time=data.get("startTime"),
                   rows_synced=_int_or_none(data.get("rowsSynced")), bytes_synced=_int_or_none(data.get("bytesSynced")),
                   attached=attached, last_updated_at=data.get("lastUpdatedAt"), duration=data.get("duration"))


def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent/unparsable."""
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class AirbyteClient:
    """Airbyte public API client. ``base_url`` is e.g. ``https://api.airbyte.com/v1`` or
    ``http://airbyte:8000/api/public/v1``. ``max_tries`` counts attempts per request (>= 1).
    ``before_request`` is called before every HTTP attempt (hook for a shared rate limiter)."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *, timeout: float = 30,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 max_tries: int = 5, breaker: Optional[CircuitBreaker] = None,
                 before_request: Optional[Callable[[], None]] = None, backoff_base: float = 1.0,
                 backoff_cap: float = 30.0, max_retry_after: float = 300.0,
                 jitter: Callable[[], float] = random.random) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self._clock, self._sleep, self._jitter = clock, sleep, jitter
        self.max_tries = max(1, int(max_tries))
        self.breaker = breaker
        self.before_request = before_request
        self.backoff_base, self.backoff_cap, self.max_retry_after = backoff_base, backoff_cap, max_retry_after
        self._token: Optional[str] = None
        self._refresh_at = 0.0
        self._token_lock = threading.Lock()
        self._form_token = False  # set once the server rejected the JSON token body

    def __repr__(self) -> str:
        return f"AirbyteClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # --- public API -------------------------------------------------------------------------
    def trigger_sync(self, connection_id: str) -> Job:
        """Start a sync; if one is already running (409), return that job with ``attached=True``."""
        status, data = self._api("POST", "/jobs", body={"connectionId": connection_id, "jobType": "sync"})
        if status != 409:
            return Job.from_api(self._expect_ok(status, data), connection_id=connection_id)
        log.info("airbyte: sync already running for connection %s; attaching", connection_id)
        job = self._running_sync(connection_id)
        if job is None:
            raise self._error(409, data, "sync conflict but no running sync job found")
        job.attached = True
        return job

    def get_job(self, job_id: Union[int, str]) -> Job:
        status, data = self._api("GET", f"/jobs/{urllib.parse.quote(str(job_id), safe='')}")
        return Job.from_api(self._expect_ok(status, data))

    def list_jobs(self, connection_id: str, *, limit: int = 20, order_by: Optional[str] = None,
                  job_type: Optional[str] = None) -> list[Job]:
        query = {"connectionId": connection_id, "limit": str(limit), "jobType": job_type, "orderBy": order_by}
        query = {k: v for k, v in query.items() if v}
        status, data = self._api("GET", "/jobs", query=query)
        items = self._expect_ok(status, data).get("data") or []
        return [Job.from_api(item, connection_id=connection_id) for item in items if isinstance(item, dict)]

    # --- internals --------------------------------------------------------------------------
    def _running_sync(self, connection_id: str) -> Optional[Job]:
        for kwargs in ({"limit": 1, "order_by": "createdAt|DESC"}, {"limit": 100}):
            try:
                jobs = self.list_jobs(connection_id, **kwargs)
            except AirbyteError as exc:
                if isinstance(exc, CircuitOpenError):
                    raise
                log.info("airbyte: listing jobs failed (%s); trying without orderBy", exc.status)
                continue
            running = [j for j in jobs if not j.is_final and (j.job_type or "sync") == "sync"]
            if running:
                return max(running, key=lambda j: (j.job_id if isinstance(j.job_id, int) else -1, j.start_time or ""))
        return None

    def _api(self, method: str, path: str, *, body: Any = None, query: Optional[dict] = None) -> tuple[int, Any]:
        token = self._get_token()
        status, data = self._send(method, path, json_body=body, query=query, token=token)
        if status == 401:
            log.info("airbyte: 401 on %s %s; refreshing token once", method, path)
            token = self._get_token(stale=token)
            status, data = self._send(method, path, json_body=body, query=query, token=token)
        return status, data

    def _get_token(self, stale: Optional[str] = None) -> str:
        with self._token_lock:
            if self._token and self._token != stale and self._clock() < self._refresh_at:
                return self._token
            if stale is not None and self._token and self._token != stale:
                return self._token  # another thread already refreshed it
            self._token = None
            creds = {"client_id": self.client_id, "client_secret": self._secret}
            if not self._form_token:
                status, data = self._send("POST", "/applications/token",
                                          json_body={**creds, "grant-type": "client_credentials"})
                if status in (400, 415):
                    log.info("airbyte: JSON token request rejected (%s); using form encoding", status)
                    self._form_token = True
            if self._form_token:
                status, data = self._send("POST", "/applications/token",
                                          form={"grant_type": "client_credentials", **creds})
            data = self._expect_ok(status, data, "token exchange failed")
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise AirbyteError(status, "token response without access_token")
            lifetime = _int_or_none(data.get("expires_in"))
            lifetime = lifetime if lifetime and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
            # 80 % of the lifetime or 60 s before expiry, whichever is earlier (half, if <= 60 s)
            refresh_after = min(0.8 * lifetime, lifetime - 60.0) if lifetime > 60 else 0.5 * lifetime
            self._token, self._refresh_at = token, self._clock() + refresh_after
            log.debug("airbyte: new access token, expires in %ss", lifetime)
            return token

    def _send(self, method: str, path: str, *, json_body: Any = None, form: Optional[dict] = None,
              query: Optional[dict] = None, token: Optional[str] = None) -> tuple[int, Any]:
        """One request with retries on 429/5xx/connection errors. Returns (status, parsed body)
        for any other status; raises :class:`AirbyteError` once ``max_tries`` is exhausted."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        data: Optional[bytes] = None
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        error = AirbyteError(None, "no attempt made")
        for attempt in range(1, self.max_tries + 1):
            if self.breaker is not None:
                self.breaker.before_call()
            if self.before_request is not None:
                try:
                    self.before_request()
                except BaseException:
                    if self.breaker is not None:
                        self.breaker.release()
                    raise
            wait: Optional[float] = None
            try:
                status, resp_headers, payload = self._http(method, url, data, headers)
            except (OSError, http.client.HTTPException) as exc:
                error = AirbyteError(None, f"connection error: {type(exc).__name__}: {self._redact(str(exc))}")
                status = None
            else:
                if status != 429 and status < 500:
                    if self.breaker is not None:
                        self.breaker.record_success()
                    return status, payload
                error = self._error(status, payload)
                wait = _retry_after(resp_headers.get("Retry-After"))
            if self.breaker is not None:
                self.breaker.record_failure()
            if attempt >= self.max_tries:
                break
            if wait is None:
                wait = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)) * self._jitter()
            else:
                wait = min(wait, self.max_retry_after)
            log.warning("airbyte: %s %s -> %s; retry %d/%d in %.2fs", method, path,
                        status if status is not None else "connection error", attempt, self.max_tries - 1, wait)
            self._sleep(wait)
        raise error

    def _http(self, method: str, url: str, data: Optional[bytes], headers: dict) -> tuple[int, Any, Any]:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, resp_headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, resp_headers, raw = exc.code, exc.headers, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            payload: Any = json.loads(text) if text.strip() else {}
        except ValueError:
            payload = text
        return status, resp_headers, payload

    def _expect_ok(self, status: int, data: Any, context: str = "") -> dict:
        if 200 <= status < 300:
            if isinstance(data, dict):
                return data
            raise AirbyteError(status, "response body is not a JSON object")
        raise self._error(status, data, context)

    def _error(self, status: int, data: Any, context: str = "") -> AirbyteError:
        problem_type = None
        if isinstance(data, dict):  # problem+json: title/detail; load-shed 429: message
            problem_type = data.get("type")
            parts = [str(data[k]) for k in ("title", "detail", "message") if data.get(k)]
            message = ": ".join(dict.fromkeys(parts)) or json.dumps(data)[:300]
        else:
            message = str(data)[:300] or "(empty body)"
        message = f"{context}: {message}" if context else message
        return AirbyteError(status, self._redact(message), problem_type=problem_type)

    def _redact(self, text: str) -> str:
        for secret in (self._secret, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text
