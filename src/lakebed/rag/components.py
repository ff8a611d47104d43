"""The RAG service as LangChain components, for LangChain apps.

Kept apart from the service's own modules so that the API and the CLI do not pay for
importing LangChain's runnables (about a second) unless a LangChain app asks for them.
``LakebedRetriever`` is frozen: the asker's groups are fixed when it is made, so a chain
cannot widen them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from lakebed.rag.answer import Answerer
from lakebed.rag.retrieval import Retriever
from lakebed.rag.store import Filters, Hit, SearchMode


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


def answer_chain(answerer: Answerer, groups: Sequence[str]) -> Runnable[str, dict[str, Any]]:
    """The answerer as a LangChain runnable: a question in, the answer as a dict out."""
    fixed = list(groups)
    return RunnableLambda(lambda question: answerer.ask(question, fixed).as_dict())
