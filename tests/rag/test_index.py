"""Incremental indexing on the real model and LanceDB: changes, deletions, and a real crash."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakebed.config import Settings
from lakebed.rag.chunking import chunk_documents
from lakebed.rag.embeddings import EmbeddingCache, MiniLMEmbeddings
from lakebed.rag.index import SHIPPED_CORPUS, index_corpus, load_sources
from lakebed.rag.lance_store import LanceStore
from lakebed.rag.loaders import load_corpus


def snapshot(store: LanceStore) -> dict[str, tuple[str, str]]:
    """chunk id -> (document hash, text): what a reader of the index sees."""
    if store._table is None:
        return {}
    rows = store._table.to_arrow().select(["chunk_id", "doc_hash", "text"]).to_pylist()
    return {r["chunk_id"]: (r["doc_hash"], r["text"]) for r in rows}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, LanceStore, MiniLMEmbeddings, EmbeddingCache]:
    corpus = tmp_path / "corpus"
    shutil.copytree(SHIPPED_CORPUS, corpus)
    settings = Settings(data_home=tmp_path / "home")
    settings.rag.corpus = corpus
    store = LanceStore.open(tmp_path / "home" / "rag" / "lancedb", "LakebedChunk")
    cache = EmbeddingCache(tmp_path / "home" / "rag" / "embeddings.sqlite")
    return settings, store, MiniLMEmbeddings(), cache


def test_reindexing_touches_only_what_changed(
    setup: tuple[Settings, LanceStore, MiniLMEmbeddings, EmbeddingCache],
) -> None:
    settings, store, model, cache = setup
    corpus = settings.rag.corpus
    assert corpus is not None
    first = index_corpus(settings, store, model, cache, with_catalog=False)
    documents = load_corpus(corpus).documents
    assert sorted(first.added) == sorted(d.doc_id for d in documents)
    assert first.chunks_written == store.count() > 0
    before = snapshot(store)

    again = index_corpus(settings, store, model, cache, with_catalog=False)
    assert (again.chunks_written, again.chunks_embedded) == (0, 0)
    assert again.unchanged == len(documents)

    markdown = sorted(p for p in corpus.rglob("*.md"))
    edited, deleted = markdown[0], markdown[1]
    edited_id = edited.relative_to(corpus).as_posix()
    deleted_id = deleted.relative_to(corpus).as_posix()
    edited.write_text(edited.read_text() + "\n\nA newly added closing remark about ferrets.\n")
    deleted.unlink()
    third = index_corpus(settings, store, model, cache, with_catalog=False)
    after = snapshot(store)
    assert third.changed == [edited_id]
    assert third.removed == [deleted_id]
    assert third.added == []
    assert third.unchanged == len(documents) - 2
    # exactly the edited document's chunks changed; the deleted one's are gone
    unchanged_before = {
        k: v for k, v in before.items() if not k.startswith((edited_id, deleted_id))
    }
    assert {k: after[k] for k in unchanged_before} == unchanged_before
    assert not any(k.startswith(deleted_id + "::") for k in after)
    new_edited = {k: v for k, v in after.items() if k.startswith(edited_id + "::")}
    assert any("ferrets" in text for _, text in new_edited.values())
    # only chunks whose text is new were embedded: the rest came from the cache
    old_texts = {text for k, (_, text) in before.items() if k.startswith(edited_id + "::")}
    assert 1 <= third.chunks_embedded <= len(new_edited)
    assert third.chunks_embedded <= sum(1 for _, t in new_edited.values() if t not in old_texts) + 1


def test_an_unreadable_file_leaves_the_index_until_it_is_readable(
    setup: tuple[Settings, LanceStore, MiniLMEmbeddings, EmbeddingCache],
) -> None:
    settings, store, model, cache = setup
    corpus = settings.rag.corpus
    assert corpus is not None
    index_corpus(settings, store, model, cache, with_catalog=False)
    pdf = sorted(corpus.rglob("*.pdf"))[0]
    pdf_id = pdf.relative_to(corpus).as_posix()
    good = pdf.read_bytes()
    count = store.indexed()[pdf_id].chunks
    pdf.write_bytes(b"%PDF-1.7 truncated upload")
    report = index_corpus(settings, store, model, cache, with_catalog=False)
    assert [doc for doc, _ in report.failures] == [pdf_id]
    # its old chunks may carry groups the rules no longer give: out, until readable again
    assert report.removed == [pdf_id]
    assert pdf_id not in store.indexed()
    pdf.write_bytes(good)
    back = index_corpus(settings, store, model, cache, with_catalog=False)
    assert back.added == [pdf_id]
    assert back.chunks_embedded == 0  # the vectors came from the cache
    assert store.indexed()[pdf_id].chunks == count


def test_the_data_catalog_is_indexed_from_dbt(
    setup: tuple[Settings, LanceStore, MiniLMEmbeddings, EmbeddingCache],
) -> None:
    settings, _store, _model, _cache = setup
    loaded = load_sources(settings)
    catalog = {d.doc_id: d for d in loaded.documents if d.doc_id.startswith("catalog/")}
    assert "catalog/gold/fct_transactions.md" in catalog
    fct = catalog["catalog/gold/fct_transactions.md"]
    headings = {s.heading_path[-1] for s in fct.sections}
    assert "fct_transactions.fraud_reported_at" in headings
    chunks = chunk_documents(catalog.values(), 800, 120)
    assert any("unique; not_null" in c.text for c in chunks)


def test_a_killed_index_run_leaves_a_consistent_index_and_a_rerun_completes(
    setup: tuple[Settings, LanceStore, MiniLMEmbeddings, EmbeddingCache], tmp_path: Path
) -> None:
    settings = setup[0]
    corpus = settings.rag.corpus
    assert corpus is not None
    home = settings.data_home
    env = {**os.environ, "LAKEBED_RAG__CORPUS": str(corpus)}
    command = [sys.executable, "-m", "lakebed.cli", "index", "--data-home", str(home)]
    process = subprocess.Popen(
        [*command, "--batch-documents", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    folder = home / "rag" / "lancedb"
    deadline = time.monotonic() + 240
    killed_at = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / "LakebedChunk.lance").exists():
            done = len(LanceStore.open(folder, "LakebedChunk").indexed())
            if done >= 3:
                process.send_signal(signal.SIGKILL)
                killed_at = done
                break
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=30)
    assert killed_at, f"the index run ended before it could be killed: {stderr.decode()[-2000:]}"
    crashed = LanceStore.open(folder, "LakebedChunk")
    documents = {d.doc_id: d for d in load_sources(settings).documents}
    state = crashed.indexed()
    assert 3 <= len(state) < len(documents)
    # every document a reader can see is whole: each batch was one commit
    assert all(state[d].complete(documents[d].content_hash) for d in state)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    final = LanceStore.open(folder, "LakebedChunk")
    state = final.indexed()
    assert set(state) == set(documents)
    assert all(state[d].complete(documents[d].content_hash) for d in state)
    expected = chunk_documents(
        documents.values(), settings.rag.chunk_size, settings.rag.chunk_overlap
    )
    assert {k: v[1] for k, v in snapshot(final).items()} == {c.chunk_id: c.text for c in expected}
