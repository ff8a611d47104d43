"""Retrieval for one asker: embed the question, search the store with the asker's groups.

``Retriever`` is the service's own entry point; ``LakebedRetriever`` wraps it as a
LangChain retriever so the same access-controlled search plugs into LangChain apps
(the groups are fixed when the retriever is made, so a chain cannot widen them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

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


def to_langchain(hit: Hit, rank: int) -> LCDocument:
    chunk = hit.chunk
    return LCDocument(
        page_content=chunk.text,
        id=chunk.chunk_id,
        metadata={
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "title": chunk.title,
            "section": chunk.heading,
            "source": chunk.path + chunk.anchor,
            "groups": list(chunk.groups),
            "rank": rank,
        },
    )


class LakebedRetriever(BaseRetriever):
    """Access-controlled hybrid retrieval as a LangChain ``BaseRetriever``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    retriever: Retriever
    groups: tuple[str, ...]
    mode: SearchMode = "hybrid"
    k: int = 5
    filters: Filters | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        found = self.retriever.search(query, self.groups, self.mode, self.k, self.filters)
        return [to_langchain(hit, rank) for rank, hit in enumerate(found.hits, start=1)]
