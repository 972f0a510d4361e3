"""A local stand-in for the OpenAI embeddings and chat endpoints, for tests only.

Speaks ``POST /v1/embeddings`` closely enough for the official ``openai`` client, returns vectors
derived from a hash of each input (same text, same vector, across runs), can be scripted to fail
the first N requests with a status, and records every request body it received.
``POST /v1/chat/completions`` answers with a fixed text that cites the first context passage and
records the request in ``chat_requests`` (so a test can read exactly what left the process).
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
        self.chat_requests: list[dict[str, Any]] = []
        self.chat_reply = "From the context: the customer raised pricing [1]."
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

    def _chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.chat_requests.append(body)
            status = self._failures.pop(0) if self._failures else 200
            self.statuses.append(status)
        if status != 200:
            return status, {"error": {"message": f"scripted {status}", "type": "server_error", "code": None}}
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
        return 200, {
            "id": f"chatcmpl-{len(self.chat_requests)}", "object": "chat.completion", "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.chat_reply}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.rstrip("/")
                if path not in ("/v1/embeddings", "/v1/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                self._send(*(server._chat(body) if path.endswith("completions") else server._respond(body)))

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
