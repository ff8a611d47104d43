"""The vector store: one interface, LanceDB (local profile) and Weaviate (cluster profile).

Access control lives here, inside the query: every search takes the asker's groups and
the store itself filters on them, so a chunk the asker may not read never leaves the
store (no post-filtering that a bug could skip, no top-k padded with forbidden hits
whose absence would hint at them). No groups means no results, never "no filter".

Writes are per document: ``write`` makes the chunks of the named documents exactly the
given ones. Every chunk carries its document's hash and chunk count, so ``indexed``
can tell a document that was fully written from one a crash left half-written, and
the next index run repairs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from lakebed.rag.documents import Chunk

if TYPE_CHECKING:
    from lakebed.config import Settings

Floats = npt.NDArray[np.float32]
SearchMode = Literal["bm25", "dense", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("bm25", "dense", "hybrid")
# The constant of reciprocal rank fusion (Cormack et al. 2009); 60 is the paper's value.
RRF_K = 60


class StoreError(RuntimeError):
    """The store cannot be reached or refused a request; the message says which and why."""


@dataclass(frozen=True)
class Filters:
    """Metadata filters applied inside the store query, on top of the access groups."""

    doc_ids: tuple[str, ...] | None = None
    path_prefix: str | None = None


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. ``score`` orders hits within one result list only."""

    chunk: Chunk
    score: float


@dataclass(frozen=True)
class DocumentState:
    """What the store holds of one document."""

    hashes: frozenset[str]
    chunks: int
    expected: int

    def complete(self, content_hash: str) -> bool:
        return self.hashes == {content_hash} and self.chunks == self.expected


class VectorStore(ABC):
    """A chunk index with dense, keyword and hybrid search, filtered by access groups."""

    @abstractmethod
    def write(self, chunks: Sequence[Chunk], vectors: Floats, replace: Collection[str]) -> None:
        """Make the documents in ``replace`` hold exactly the given chunks.

        ``vectors[i]`` is the embedding of ``chunks[i]``. A document in ``replace`` with
        no chunks given is removed; documents not in ``replace`` are not touched.
        """

    @abstractmethod
    def indexed(self) -> dict[str, DocumentState]:
        """Every document with at least one chunk in the store."""

    @abstractmethod
    def count(self) -> int:
        """Chunks in the store."""

    @abstractmethod
    def _dense(
        self, vector: Floats, groups: Sequence[str], k: int, filters: Filters
    ) -> list[Hit]: ...

    @abstractmethod
    def _keyword(
        self, query: str, groups: Sequence[str], k: int, filters: Filters
    ) -> list[Hit]: ...

    @abstractmethod
    def _hybrid(
        self, query: str, vector: Floats, groups: Sequence[str], k: int, filters: Filters
    ) -> list[Hit]: ...

    def search(
        self,
        mode: SearchMode,
        query: str,
        vector: Floats | None,
        groups: Sequence[str],
        k: int,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks the groups may read; ``vector`` is the query's embedding."""
        if not groups or k <= 0:
            return []
        filters = filters or Filters()
        if mode == "bm25":
            return self._keyword(query, groups, k, filters)
        if vector is None:
            raise ValueError(f"{mode} search needs the query's embedding")
        if mode == "dense":
            return self._dense(vector, groups, k, filters)
        return self._hybrid(query, vector, groups, k, filters)

    @abstractmethod
    def drop(self) -> None:
        """Remove every chunk and the table or class itself (``lakebed index --rebuild``)."""

    def size_bytes(self) -> int | None:
        """Bytes the index takes on disk, where the store can tell."""
        return None

    def close(self) -> None:  # noqa: B027 -- optional hook, most stores hold nothing
        """Release connections; the default has none."""


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Fuse ranked lists by the sum of 1 / (RRF_K + rank); ties broken by chunk id."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = hit.chunk.chunk_id
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            chunks[key] = hit.chunk
    order = sorted(scores, key=lambda key: (-scores[key], key))
    return [Hit(chunks[key], scores[key]) for key in order[:k]]


def open_vector_store(settings: Settings) -> VectorStore:
    """The profile's store: LanceDB under the data home, or the configured Weaviate."""
    if settings.profile == "cluster":
        from lakebed.rag.weaviate_store import WeaviateStore

        return WeaviateStore.connect(
            settings.rag.weaviate_url, settings.rag.collection, settings.rag.weaviate_grpc_port
        )
    from lakebed.rag.lance_store import LanceStore

    return LanceStore.open(
        settings.data_home / "rag" / "lancedb", settings.rag.collection, settings.rag.candidates
    )
