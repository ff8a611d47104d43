"""The embedding model: verified before use, offline, normalised, cached by text."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lakebed.rag.embeddings import (
    DIMENSION,
    EmbeddingCache,
    MiniLMEmbeddings,
    ModelError,
    embed_cached,
    model_dir,
    verify_weights,
)


def test_the_shipped_weights_verify() -> None:
    verify_weights(model_dir())


def test_tampered_or_truncated_weights_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir(), folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern, same size
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        verify_weights(folder)
    weights.write_bytes(bytes(data[:-10]))
    with pytest.raises(ModelError, match="bytes"):
        verify_weights(folder)
    weights.unlink()
    with pytest.raises(ModelError, match="missing"):
        MiniLMEmbeddings(folder=folder).encode(["anything"])


def test_vectors_are_normalised_and_close_for_close_meanings() -> None:
    model = MiniLMEmbeddings()
    vectors = model.encode(
        [
            "How do I dispute a card payment?",
            "What is the process to contest a charge on my card?",
            "The Kafka broker listens on port 19092.",
        ]
    )
    assert vectors.shape == (3, DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert model.encode([]).shape == (0, DIMENSION)
    # LangChain's interface gives the same vector (in bfloat16, padding in a batch moves
    # the last digits, hence a cosine rather than equality)
    single = np.asarray(model.embed_query("How do I dispute a card payment?"))
    assert float(single @ vectors[0]) > 0.999


def test_the_cache_embeds_each_text_once(tmp_path: Path) -> None:
    model = MiniLMEmbeddings()
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = ["alpha policy text", "beta runbook text", "alpha policy text"]
    first, computed = embed_cached(texts, model, cache)
    assert computed == 2  # the repeated text once
    assert len(cache) == 2
    again, computed = embed_cached(texts[::-1], model, cache)
    assert computed == 0
    assert np.array_equal(again, first[::-1])
    other = MiniLMEmbeddings(precision="float32" if model.precision == "bfloat16" else "bfloat16")
    _, computed = embed_cached(texts, other, cache)
    assert computed == 2  # another precision is another vector: not served from the cache
    cache.close()
