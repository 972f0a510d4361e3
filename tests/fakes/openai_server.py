"""A local stand-in for the OpenAI embeddings endpoint, for tests only.

Speaks ``POST /v1/embeddings`` closely enough for the official ``openai`` client, returns vectors
derived from a hash of each input (same text, same vector, across runs), can be scripted to fail
the first N requests with a status, and records every request body it received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.fakes.loopback import LoopbackServer


def fake_vector(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    vec = np.random.default_rng(seed).standard_normal(dim)
    return (vec / np.linalg.norm(vec)).tolist()


class FakeOpenAIServer(LoopbackServer):
    def __init__(self, dim: int = 1536) -> None:
        self.dim = dim
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # every request, including failed ones
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._serve(self._handler_class())

    def fail_next(self, count: int, status: int = 429) -> None:
        """Answer the next ``count`` requests with ``status`` instead of vectors."""
        with self._lock:
            self._failures.extend([status] * count)

    def _respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            status = self._failures.pop(0) if self._failures else 200
            self.statuses.append(status)
        if status != 200:
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            return status, {"error": {"message": f"scripted {status}", "type": kind, "code": kind}}
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        dim = int(body.get("dimensions") or self.dim)
        # The openai client asks for base64 (packed little-endian float32) unless told otherwise.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vec: Any = fake_vector(text, dim)
            if as_base64:
                vec = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": vec})
        tokens = sum(len(t.split()) for t in inputs)
        return 200, {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/embeddings":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                self._send(*server._respond(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
