import socket
import sys
from pathlib import Path

import numpy as np
import openai
import pytest

from embed_worker import embedders
from embed_worker.embedders import EmbedderError, LocalOnnxEmbedder, OpenAIEmbedder, build_embedder

# The editable install maps only the product packages; tests/unit has no __init__.py, so pytest
# puts only tests/unit on sys.path. The repo root is needed for tests.fakes.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fakes.openai_server import FakeOpenAIServer, fake_vector  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def local():
    return LocalOnnxEmbedder(threads=2, batch_size=8)


def test_local_identity(local):
    assert isinstance(local, embedders.Embedder)
    assert local.name == "all-MiniLM-L6-v2"
    assert local.dim == 384
    assert local.version == f"int8-onnx-{embedders.MINILM_INT8_SHA256[:12]}"


def test_local_vectors_normalised_and_semantic(local):
    vecs = local.embed([
        "The customer wants to renew the contract next quarter.",
        "The client plans to extend their agreement in the coming quarter.",
        "My cat likes to sleep in the sun on the balcony.",
    ])
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.3


def test_local_order_preserved_and_batch_independent(local):
    texts = [("word " * (i * 7 % 53 + 1)).strip() + f" item {i}" for i in range(30)]
    texts[5] = ""
    texts[11] = "pricing objection about annual seats " * 80  # beyond the 256 word-piece window
    batch = local.embed(texts)
    assert batch.shape == (30, 384)
    for i in (0, 5, 11, 17, 29):
        alone = local.embed([texts[i]])
        np.testing.assert_allclose(alone[0], batch[i], atol=1e-4)
    assert local.embed([]).shape == (0, 384)


def test_local_rejects_wrong_model(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(EmbedderError, match="sha256"):
        LocalOnnxEmbedder(model_path=fake)


def test_build_embedder():
    assert isinstance(build_embedder("local"), LocalOnnxEmbedder)
    with pytest.raises(ValueError, match="'hashing'"):
        build_embedder("hashing")


@pytest.fixture()
def server():
    with FakeOpenAIServer(dim=1536) as srv:
        yield srv


def _openai(server, **kw):
    sleeps = []
    emb = build_embedder(
        "openai", api_key="test", base_url=server.base_url, sleep=sleeps.append, **kw
    )
    return emb, sleeps


def test_openai_roundtrip_and_normalised(server):
    emb, _ = _openai(server)
    assert (emb.name, emb.dim) == ("text-embedding-3-small", 1536)
    vecs = emb.embed(["alpha", "beta"])
    assert vecs.shape == (2, 1536) and vecs.dtype == np.float32
    expected = np.asarray(fake_vector("beta", 1536), dtype=np.float32)
    np.testing.assert_allclose(vecs[1], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert server.requests[0]["model"] == "text-embedding-3-small"
    assert server.requests[0]["input"] == ["alpha", "beta"]


def test_openai_batches_by_count_and_tokens(server):
    emb, _ = _openai(server, max_batch=4)
    texts = [f"text {i}" for i in range(10)]
    vecs = emb.embed(texts)
    assert [len(r["input"]) for r in server.requests] == [4, 4, 2]
    assert [r["input"] for r in server.requests][2] == ["text 8", "text 9"]
    np.testing.assert_allclose(vecs[9], fake_vector("text 9", 1536), atol=1e-6)

    server.requests.clear()
    emb, _ = _openai(server, max_request_tokens=50)
    emb.embed(["word " * 20] * 5)  # 26 estimated tokens each: one per request
    assert [len(r["input"]) for r in server.requests] == [1, 1, 1, 1, 1]


def test_openai_caps_batch_at_api_limit(server):
    emb, _ = _openai(server, max_batch=10_000, dim=64)
    emb.embed([f"t{i}" for i in range(2100)])
    assert [len(r["input"]) for r in server.requests] == [2048, 52]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_openai_retries_then_succeeds(server, status):
    calls = []
    emb, sleeps = _openai(server, max_tries=4, rate_limiter=lambda: calls.append(1))
    server.fail_next(2, status)
    vecs = emb.embed(["hello"])
    assert vecs.shape == (1, 1536)
    assert server.statuses == [status, status, 200]
    assert len(sleeps) == 2 and all(s >= 0 for s in sleeps)
    assert len(calls) == 3  # the limiter is consulted before every attempt


def test_openai_gives_up_after_max_tries(server):
    emb, sleeps = _openai(server, max_tries=3)
    server.fail_next(5, 429)
    with pytest.raises(EmbedderError, match="3 tries"):
        emb.embed(["hello"])
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_openai_does_not_retry_client_errors(server):
    emb, sleeps = _openai(server, max_tries=5)
    server.fail_next(1, 400)
    with pytest.raises(openai.BadRequestError):
        emb.embed(["hello"])
    assert len(server.requests) == 1 and sleeps == []


def test_openai_connection_errors_retry():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = []
    emb = OpenAIEmbedder(
        api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_tries=2, sleep=sleeps.append
    )
    with pytest.raises(EmbedderError):
        emb.embed(["hello"])
    assert len(sleeps) == 1


def test_openai_masks_pii_before_sending(server):
    emb, _ = _openai(server)
    emb.embed(["Email jane.doe@acme.com or call +1 415 555 0132", "card 4111 1111 1111 1111", ""])
    sent = server.requests[0]["input"]
    assert sent == ["Email [EMAIL] or call [PHONE]", "card [CARD]", " "]
    assert "acme.com" not in repr(server.requests)


def test_openai_dimensions_and_unknown_model(server):
    emb, _ = _openai(server, model="text-embedding-3-large", dim=256)
    assert emb.embed(["a"]).shape == (1, 256)
    assert server.requests[0]["dimensions"] == 256
    with pytest.raises(ValueError, match="dim"):
        OpenAIEmbedder(api_key="x", model="my-model")
