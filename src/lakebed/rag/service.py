"""The RAG service assembled for one profile: store, model, cache, retriever, answerer, users.

The CLI and the API both go through here, so ``lakebed ask`` and ``POST /ask`` cannot
drift apart in how they filter, rank or cite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakebed.rag.answer import Answer, Answerer
from lakebed.rag.documents import Document
from lakebed.rag.embeddings import EmbeddingCache, MiniLMEmbeddings
from lakebed.rag.index import IndexReport, index_corpus, rag_home, read_document
from lakebed.rag.retrieval import Retriever
from lakebed.rag.store import Filters, SearchMode, VectorStore, open_vector_store
from lakebed.rag.users import User, find_user, load_users

if TYPE_CHECKING:
    from lakebed.config import Settings


@dataclass
class RagService:
    settings: Settings
    store: VectorStore
    model: MiniLMEmbeddings
    cache: EmbeddingCache
    users: dict[str, User]

    @classmethod
    def open(cls, settings: Settings, store: VectorStore | None = None) -> RagService:
        return cls(
            settings,
            store or open_vector_store(settings),
            MiniLMEmbeddings(
                settings.rag.embedding_batch, precision=settings.rag.embedding_precision
            ),
            EmbeddingCache(rag_home(settings) / "embeddings.sqlite"),
            load_users(settings.rag.users_file),
        )

    @property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.model, self.settings.rag.top_k)

    @property
    def answerer(self) -> Answerer:
        return Answerer(self.retriever, self.settings.rag)

    def user(self, name: str) -> User:
        return find_user(self.users, name)

    def index(
        self,
        *,
        with_catalog: bool = True,
        batch_documents: int = 16,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> IndexReport:
        return index_corpus(
            self.settings,
            self.store,
            self.model,
            self.cache,
            with_catalog=with_catalog,
            batch_documents=batch_documents,
            on_total=on_total,
            on_progress=on_progress,
        )

    def ask(
        self,
        question: str,
        user: str | User,
        mode: SearchMode = "hybrid",
        filters: Filters | None = None,
    ) -> Answer:
        asker = user if isinstance(user, User) else self.user(user)
        return self.answerer.ask(question, asker.groups, mode, filters)

    def document(self, doc_id: str, user: str | User) -> Document:
        """A cited document, whole, if ``user`` may read it (``DocumentNotFoundError``
        otherwise, whether or not it exists)."""
        reader = user if isinstance(user, User) else self.user(user)
        return read_document(self.settings, doc_id, reader.groups)

    def close(self) -> None:
        self.store.close()
        self.cache.close()
