"""Retrieval for one asker: embed the question, search the store with the asker's groups.

``Retriever`` is the service's own entry point; ``lakebed.rag.components`` wraps it for
LangChain apps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from lakebed.rag.embeddings import MiniLMEmbeddings
from lakebed.rag.store import Filters, Floats, Hit, SearchMode, VectorStore


@dataclass(frozen=True)
class Retrieval:
    query: str
    mode: SearchMode
    hits: list[Hit]
    vector: Floats
    seconds: float


class Retriever:
    def __init__(self, store: VectorStore, model: MiniLMEmbeddings, k: int = 5) -> None:
        self.store = store
        self.model = model
        self.k = k

    def search(
        self,
        query: str,
        groups: Sequence[str],
        mode: SearchMode = "hybrid",
        k: int | None = None,
        filters: Filters | None = None,
    ) -> Retrieval:
        started = time.perf_counter()
        vector = self.model.encode([query])[0]
        hits = self.store.search(mode, query, vector, groups, k or self.k, filters)
        return Retrieval(query, mode, hits, vector, time.perf_counter() - started)

    def best_similarity(
        self, vector: Floats, groups: Sequence[str], filters: Filters | None = None
    ) -> float:
        """Cosine similarity of the closest chunk the groups may read (-1 if none)."""
        hits = self.store.search("dense", "", vector, groups, 1, filters)
        return hits[0].score if hits else -1.0
