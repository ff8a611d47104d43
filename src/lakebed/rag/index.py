"""Incremental indexing: embed only what changed, remove what is gone, repair what a crash left.

The store is the manifest: every chunk carries its document's content hash and chunk
count, so comparing the corpus with ``VectorStore.indexed`` tells, per document, whether
it is new, changed, unchanged, half-written by an interrupted run, or deleted. Changed
documents are written in batches, each batch one ``write``; a run that dies between
batches leaves every finished batch in place and the next run picks up the rest.

A file that fails to load is reported and its chunks are removed from the index: its
last good version may carry access groups that the rules no longer give it, and an
index must never be wider than the rules. It comes back with the next readable version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakebed.rag.catalog import write_catalog
from lakebed.rag.chunking import chunk_document
from lakebed.rag.documents import Chunk, Document, embedding_text
from lakebed.rag.embeddings import EmbeddingCache, MiniLMEmbeddings, embed_cached
from lakebed.rag.loaders import ACCESS_FILE, AccessRules, LoadReport, load_corpus, load_document
from lakebed.rag.store import VectorStore

if TYPE_CHECKING:
    from lakebed.config import Settings

SHIPPED_CORPUS = Path(__file__).parent / "corpus"
CATALOG_PREFIX = "catalog/"


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def documents(self) -> int:
        return len(self.added) + len(self.changed) + len(self.repaired) + self.unchanged


def corpus_dir(settings: Settings) -> Path:
    return settings.rag.corpus or SHIPPED_CORPUS


def rag_home(settings: Settings) -> Path:
    return settings.data_home / "rag"


def load_sources(settings: Settings, with_catalog: bool = True) -> LoadReport:
    """The corpus and, unless asked not to, the data catalog generated from dbt."""
    report = load_corpus(corpus_dir(settings))
    if with_catalog:
        catalog = rag_home(settings) / "catalog"
        write_catalog(catalog)
        extra = load_corpus(catalog, prefix=CATALOG_PREFIX)
        report.documents += extra.documents
        report.failures += extra.failures
    return report


class DocumentNotFoundError(LookupError):
    """No such document, or not one the asker may read: the same answer for both."""


def read_document(settings: Settings, doc_id: str, groups: tuple[str, ...]) -> Document:
    """The document ``doc_id`` as its loader sees it (sections with anchors), for a
    reader in ``groups``; anything else is ``DocumentNotFoundError``, which says nothing
    about whether the document exists."""
    missing = DocumentNotFoundError(f"no document {doc_id!r} that you may read")
    root, relative = corpus_dir(settings), doc_id
    if doc_id.startswith(CATALOG_PREFIX):
        root, relative = rag_home(settings) / "catalog", doc_id.removeprefix(CATALOG_PREFIX)
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts:
        raise missing
    if any(part.startswith(".") for part in parts) or relative == ACCESS_FILE:
        raise missing
    path = root / relative
    if not path.is_file():
        raise missing
    allowed = AccessRules.load(root).groups_for(relative)
    if not set(allowed) & set(groups):
        raise missing
    try:
        return load_document(path, doc_id, allowed)
    except Exception as error:
        raise DocumentNotFoundError(f"{doc_id!r} cannot be read: {error}") from error


@dataclass(frozen=True)
class Plan:
    write: list[Document]
    remove: list[str]
    added: list[str]
    changed: list[str]
    repaired: list[str]
    unchanged: int


def plan(store: VectorStore, loaded: LoadReport) -> Plan:
    state = store.indexed()
    write, added, changed, repaired = [], [], [], []
    unchanged = 0
    for document in loaded.documents:
        held = state.get(document.doc_id)
        if held is None:
            added.append(document.doc_id)
        elif held.complete(document.content_hash):
            unchanged += 1
            continue
        elif document.content_hash in held.hashes:
            repaired.append(document.doc_id)
        else:
            changed.append(document.doc_id)
        write.append(document)
    present = {d.doc_id for d in loaded.documents}
    remove = sorted(set(state) - present)
    return Plan(write, remove, added, changed, repaired, unchanged)


def index_corpus(
    settings: Settings,
    store: VectorStore,
    model: MiniLMEmbeddings,
    cache: EmbeddingCache | None,
    *,
    with_catalog: bool = True,
    batch_documents: int = 16,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IndexReport:
    """Bring the store in line with the corpus; ``on_progress`` counts chunks stored."""
    started = time.perf_counter()
    loaded = load_sources(settings, with_catalog)
    todo = plan(store, loaded)
    report = IndexReport(
        added=todo.added,
        changed=todo.changed,
        repaired=todo.repaired,
        removed=todo.remove,
        unchanged=todo.unchanged,
        failures=loaded.failures,
    )
    chunked = [
        (document, chunk_document(document, settings.rag.chunk_size, settings.rag.chunk_overlap))
        for document in todo.write
    ]
    if on_total is not None:
        on_total(sum(len(chunks) for _, chunks in chunked))
    if todo.remove:
        store.write([], model.encode([]), todo.remove)
    for start in range(0, len(chunked), batch_documents):
        batch = chunked[start : start + batch_documents]
        chunks: list[Chunk] = [c for _, cs in batch for c in cs]
        embed_start = time.perf_counter()
        vectors, computed = embed_cached([embedding_text(c) for c in chunks], model, cache)
        report.embed_seconds += time.perf_counter() - embed_start
        store.write(chunks, vectors, [d.doc_id for d, _ in batch])
        report.chunks_written += len(chunks)
        report.chunks_embedded += computed
        if on_progress is not None:
            on_progress(len(chunks))
    report.seconds = time.perf_counter() - started
    return report
