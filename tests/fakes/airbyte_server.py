"""A local stand-in for the Airbyte public API v1 (jobs + application tokens), for tests only.

Follows /work/shared/airbyte/airbyte-public-api.sdk.yaml: ``POST /applications/token`` (JSON or
form body; wrong credentials -> 401), ``POST /jobs`` (Bearer token required; missing connectionId
-> 400 problem+json; a sync while a job of the connection is not final -> 409 problem+json),
``GET /jobs/{jobId}``, ``GET /jobs?connectionId=&limit=&offset=&jobType=&orderBy=`` -> ``{"data": [...]}``.
A job walks its status script (default pending -> running -> succeeded), one step every
``polls_per_step`` reads of ``GET /jobs/{id}``. Knobs inject 429s (no Retry-After unless asked),
5xx, arbitrary statuses, token expiry/revocation, a JSON-token rejection, orderBy rejection and the
spec examples' ``id``-instead-of-``jobId`` quirk. Every request is recorded (Authorization redacted).
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

FINAL = {"succeeded", "failed", "cancelled"}
JOB_TYPES = {"sync", "reset", "refresh", "clear"}
PROBLEM_BASE = "https://reference.airbyte.com/reference/errors"


class FakeAirbyteServer(LoopbackServer):
    def __init__(self, client_id: str = "test-client", client_secret: str = "test-secret", *,
                 token_expires_in: int = 900, polls_per_step: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.token_expires_in = token_expires_in  # lifetime the server grants (and enforces)
        self.polls_per_step = polls_per_step
        self.json_token_status: Optional[int] = None  # e.g. 415 or 400: reject JSON token bodies
        self.reject_order_by = False  # answer 400 to GET /jobs with orderBy
        self.id_quirk = False  # job bodies use "id" and omit connectionId, like the spec's examples
        self.clock = clock
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}  # token -> expiry (server clock)
        self._failures: list[tuple[int, Optional[str], Optional[str], Optional[str]]] = []  # status, path, R-A, detail
        self._scripts: list[list[str]] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._serve(self._handler_class())

    # --- knobs -------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 429, *, path: Optional[str] = None,
                  retry_after: Optional[str] = None, detail: Optional[str] = None) -> None:
        """Answer the next ``count`` requests (whose path starts with ``path``, if given) with
        ``status``. 429s carry no Retry-After unless ``retry_after`` is given; others are
        problem+json with ``detail`` (default ``scripted <status>``)."""
        with self._lock:
            self._failures.extend([(status, path, retry_after, detail)] * count)

    def rate_limit_next(self, count: int) -> None:
        self.fail_next(count, 429)

    def server_error_next(self, count: int, status: int = 500) -> None:
        self.fail_next(count, status)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def script_next_job(self, statuses: list[str]) -> None:
        """The next created job walks ``statuses`` (first one shown at creation)."""
        with self._lock:
            self._scripts.append(list(statuses))

    def set_script(self, job_id: int, statuses: list[str]) -> None:
        with self._lock:
            self.jobs[job_id].update(script=list(statuses), polls=0)

    def add_job(self, connection_id: str, job_type: str = "sync", statuses: Optional[list[str]] = None) -> int:
        """Seed a job directly (no request recorded)."""
        with self._lock:
            return self._create(connection_id, job_type, statuses)["jobId"]

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = self.clock() - 1

    # --- views for assertions ----------------------------------------------------------------
    def requests_to(self, path_prefix: str, method: Optional[str] = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(path_prefix)
                and (method is None or r["method"] == method)]

    def status_of(self, job_id: int) -> str:
        with self._lock:
            return self._status(self.jobs[job_id])

    # --- behaviour ---------------------------------------------------------------------------
    def _create(self, connection_id: str, job_type: str, statuses: Optional[list[str]]) -> dict[str, Any]:
        script = statuses or (self._scripts.pop(0) if self._scripts else ["pending", "running", "succeeded"])
        self._next_id += 1
        job = {"jobId": self._next_id, "connectionId": connection_id, "jobType": job_type, "script": script,
               "polls": 0, "created": self._next_id,
               "startTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.jobs[job["jobId"]] = job
        return job

    def _status(self, job: dict[str, Any]) -> str:
        script = job["script"]
        return script[min(job["polls"] // max(self.polls_per_step, 1), len(script) - 1)]

    def _body(self, job: dict[str, Any]) -> dict[str, Any]:
        status = self._status(job)
        out: dict[str, Any] = {"jobId": job["jobId"], "status": status, "jobType": job["jobType"],
                               "startTime": job["startTime"], "connectionId": job["connectionId"]}
        if status.lower() in FINAL:
            out.update(lastUpdatedAt=job["startTime"], duration="PT1M", rowsSynced=42, bytesSynced=4200)
        if self.id_quirk:
            out["id"] = out.pop("jobId")
            out.pop("connectionId")
        return out

    @staticmethod
    def _problem(status: int, kind: str, title: str, detail: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = {"type": f"{PROBLEM_BASE}#{kind}", "title": title, "status": status, "detail": detail}
        return status, body, {"Content-Type": "application/problem+json"}

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes):  # noqa: C901
        parts = urlsplit(target)
        path = parts.path[3:] if parts.path.startswith("/v1/") else parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            for i, (status, prefix, retry_after, detail) in enumerate(self._failures):
                if prefix is None or path.startswith(prefix):
                    del self._failures[i]
                    if status == 429:
                        extra = {"Retry-After": retry_after} if retry_after else {}
                        return status, {"message": "You are being rate limited."}, extra
                    return self._problem(status, "error", "Scripted failure", detail or f"scripted {status}")
            if method == "POST" and path == "/applications/token":
                return self._token(headers, raw)
            auth = headers.get("authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token is None or self.tokens.get(token, float("-inf")) <= self.clock():
                return self._problem(401, "unauthorized", "Unauthorized", "missing, invalid or expired token")
            if path == "/jobs" and method == "POST":
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._problem(400, "bad-request", "Bad request", "body is not JSON")
                connection_id, job_type = body.get("connectionId"), body.get("jobType")
                if not connection_id:
                    return self._problem(400, "bad-request", "Bad request", "connectionId is required")
                if job_type not in JOB_TYPES:
                    return self._problem(400, "bad-request", "Bad request", f"invalid jobType {job_type!r}")
                if job_type == "refresh":
                    return self._problem(422, "unprocessable-entity", "Unprocessable", "refresh is not supported")
                if any(j["connectionId"] == connection_id and self._status(j).lower() not in FINAL
                       for j in self.jobs.values()):
                    return self._problem(409, "try-again-later", "Conflict",
                                         "A sync is already running for this connection.")
                return 200, self._body(self._create(connection_id, job_type, None)), {}
            if path == "/jobs" and method == "GET":
                if self.reject_order_by and "orderBy" in query:
                    return self._problem(400, "bad-request", "Bad request", "orderBy is not supported")
                jobs = [j for j in self.jobs.values()
                        if query.get("connectionId") in (None, j["connectionId"])
                        and query.get("jobType") in (None, j["jobType"])]
                field, _, direction = query.get("orderBy", "createdAt|ASC").partition("|")
                jobs.sort(key=lambda j: j["created"], reverse=direction.upper() == "DESC")
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
                return 200, {"data": [self._body(j) for j in jobs[offset:offset + limit]]}, {}
            if path.startswith("/jobs/") and method == "GET":
                job_id = path[len("/jobs/"):]
                job = self.jobs.get(int(job_id)) if job_id.isdigit() else None
                if job is None:
                    return self._problem(404, "not-found", "Not found", f"job {job_id} not found")
                job["polls"] += 1
                return 200, self._body(job), {}
            return self._problem(404, "not-found", "Not found", f"no route {method} {path}")

    def _token(self, headers: dict[str, str], raw: bytes):
        ctype = headers.get("content-type", "").split(";")[0].strip()
        if ctype == "application/json":
            if self.json_token_status:
                return self._problem(self.json_token_status, "bad-request", "Unsupported", "use a form body")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._problem(400, "bad-request", "Bad request", "body is not JSON")
        elif ctype == "application/x-www-form-urlencoded":
            body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        else:
            return self._problem(415, "unsupported-media-type", "Unsupported", f"content type {ctype!r}")
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return self._problem(401, "unauthorized", "Unauthorized", "invalid client credentials")
        token = "tok-" + secrets.token_hex(12)
        self.tokens[token] = self.clock() + self.token_expires_in
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_expires_in}, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = dict(headers)
                if "authorization" in recorded:
                    recorded["authorization"] = recorded["authorization"].split(" ")[0] + " <redacted>"
                entry = {"method": self.command, "path": self.path, "headers": recorded,
                         "body": raw.decode("utf-8", "replace"), "status": None}
                with server._lock:
                    server.requests.append(entry)
                try:
                    status, payload, extra = server._handle(self.command, self.path, headers, raw)
                except Exception as exc:  # a bug in the fake: answer 500 rather than hang
                    status, payload, extra = 500, {"title": "fake error", "detail": repr(exc)}, {}
                entry["status"] = status
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _any  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
