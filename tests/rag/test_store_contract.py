"""One contract, both vector stores: LanceDB (embedded) and a real Weaviate server.

Vectors here are random unit vectors, so the suite checks the store's own behaviour
(filters, replacement, deletion, completeness, ranking plumbing) without the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lakebed.rag.documents import Chunk
from lakebed.rag.lance_store import LanceStore
from lakebed.rag.store import SEARCH_MODES, Filters, Floats, SearchMode, VectorStore

DIM = 384
WORDS = {
    "policy/fraud.md": "fraud review threshold velocity card",
    "policy/chargebacks.md": "chargeback dispute reason code 4837 deadline",
    "exec/q3.md": "quarterly losses board revenue forecast",
    "runbooks/replay.md": "kafka replay offsets consumer group topic",
}
GROUPS = {
    "policy/fraud.md": ("all",),
    "policy/chargebacks.md": ("fraud-analysts", "executives"),
    "exec/q3.md": ("executives",),
    "runbooks/replay.md": ("engineering",),
}


def unit(rng: np.random.Generator, n: int) -> Floats:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    out: Floats = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def chunks_of(
    doc: str, n: int = 3, version: str = "v1", groups: tuple[str, ...] = ()
) -> list[Chunk]:
    return [
        Chunk(
            chunk_id=f"{doc}::{i:04d}",
            doc_id=doc,
            doc_hash=f"{doc}-{version}",
            n_chunks=n,
            ordinal=i,
            title=doc.rsplit("/", 1)[-1],
            path=doc,
            heading_path=("Title", f"Section {i}"),
            anchor=f"#section-{i}",
            groups=groups or GROUPS[doc],
            text=f"{WORDS[doc]} part {i} {version}",
        )
        for i in range(n)
    ]


@pytest.fixture(params=["lance", "weaviate"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "lance":
        lance = LanceStore.open(tmp_path / "lance", "chunks")
        yield lance
        lance.close()
    else:
        yield request.getfixturevalue("weaviate_store")


@pytest.fixture
def filled(store: VectorStore) -> tuple[VectorStore, dict[str, Floats]]:
    rng = np.random.default_rng(7)
    vectors = {}
    chunks: list[Chunk] = []
    for doc in WORDS:
        vectors[doc] = unit(rng, 3)
        chunks += chunks_of(doc)
    store.write(chunks, np.vstack([vectors[d] for d in WORDS]), list(WORDS))
    return store, vectors


def readable(groups: tuple[str, ...]) -> set[str]:
    return {d for d, g in GROUPS.items() if set(g) & set(groups)}


@pytest.mark.parametrize("mode", SEARCH_MODES)
@pytest.mark.parametrize(
    "groups",
    [("all",), ("fraud-analysts",), ("executives",), ("engineering",), ("all", "engineering")],
)
def test_access_groups_filter_inside_the_query(
    filled: tuple[VectorStore, dict[str, Floats]], mode: SearchMode, groups: tuple[str, ...]
) -> None:
    store, vectors = filled
    allowed = readable(groups)
    for doc in WORDS:
        # The query is aimed squarely at one document, allowed or not.
        hits = store.search(mode, WORDS[doc], vectors[doc][0], groups, k=12)
        got = {h.chunk.doc_id for h in hits}
        assert got <= allowed, f"{groups} got {got - allowed} asking about {doc}"
        if doc in allowed:
            assert hits
            assert hits[0].chunk.doc_id == doc
        assert all(set(h.chunk.groups) & set(groups) for h in hits)


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_no_groups_means_no_results(
    filled: tuple[VectorStore, dict[str, Floats]], mode: SearchMode
) -> None:
    store, vectors = filled
    assert store.search(mode, "fraud", vectors["policy/fraud.md"][0], (), k=5) == []
    assert store.search(mode, "fraud", vectors["policy/fraud.md"][0], ("nobody",), k=5) == []


def test_hostile_group_and_filter_values_are_data_not_syntax(
    filled: tuple[VectorStore, dict[str, Floats]],
) -> None:
    store, vectors = filled
    for evil in ["x') OR true --", "all' OR '1'='1", '"all"]) OR 1=1 --', "x\\' OR true --"]:
        assert store.search("dense", "fraud", vectors["exec/q3.md"][0], (evil,), k=5) == []
        hits = store.search(
            "dense", "q", vectors["exec/q3.md"][0], ("executives",), 5, Filters(doc_ids=(evil,))
        )
        assert hits == []


def test_metadata_filters(filled: tuple[VectorStore, dict[str, Floats]]) -> None:
    store, vectors = filled
    everyone = ("all", "fraud-analysts", "executives", "engineering")
    q = vectors["policy/fraud.md"][0]
    under = store.search("dense", "", q, everyone, 20, Filters(path_prefix="policy/"))
    assert {h.chunk.doc_id for h in under} == {"policy/fraud.md", "policy/chargebacks.md"}
    only = store.search(
        "hybrid", "kafka", q, everyone, 20, Filters(doc_ids=("runbooks/replay.md",))
    )
    assert {h.chunk.doc_id for h in only} == {"runbooks/replay.md"}
    # a filter narrows what the groups allow, it never widens it
    none = store.search("bm25", "quarterly", q, ("all",), 20, Filters(doc_ids=("exec/q3.md",)))
    assert none == []


def test_keyword_search_finds_exact_codes(filled: tuple[VectorStore, dict[str, Floats]]) -> None:
    store, _vectors = filled
    hits = store.search("bm25", "reason code 4837", None, ("fraud-analysts",), 3)
    assert hits
    assert hits[0].chunk.doc_id == "policy/chargebacks.md"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_scores_are_cosine_similarities(
    filled: tuple[VectorStore, dict[str, Floats]],
) -> None:
    store, vectors = filled
    target = vectors["runbooks/replay.md"][1]
    hits = store.search("dense", "", target, ("engineering",), 3)
    assert hits[0].chunk.chunk_id == "runbooks/replay.md::0001"
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert all(-1.0 - 1e-3 <= h.score <= 1.0 + 1e-3 for h in hits)


def test_chunks_round_trip(filled: tuple[VectorStore, dict[str, Floats]]) -> None:
    store, vectors = filled
    hit = store.search("dense", "", vectors["exec/q3.md"][2], ("executives",), 1)[0]
    assert hit.chunk == chunks_of("exec/q3.md")[2]


def test_indexed_reports_complete_documents(filled: tuple[VectorStore, dict[str, Floats]]) -> None:
    store, _ = filled
    state = store.indexed()
    assert set(state) == set(WORDS)
    assert all(state[d].complete(f"{d}-v1") for d in WORDS)
    assert not state["exec/q3.md"].complete("exec/q3.md-v2")
    assert store.count() == 12


def test_write_replaces_exactly_the_named_documents(
    filled: tuple[VectorStore, dict[str, Floats]],
) -> None:
    store, _vectors = filled
    rng = np.random.default_rng(8)
    new = chunks_of("policy/fraud.md", n=2, version="v2")
    new_vectors = unit(rng, 2)
    store.write(new, new_vectors, ["policy/fraud.md", "exec/q3.md"])  # q3: removed
    state = store.indexed()
    assert set(state) == {"policy/fraud.md", "policy/chargebacks.md", "runbooks/replay.md"}
    assert state["policy/fraud.md"].complete("policy/fraud.md-v2")
    assert state["runbooks/replay.md"].complete("runbooks/replay.md-v1")
    assert store.count() == 2 + 3 + 3
    hits = store.search("dense", "", new_vectors[1], ("all",), 5)
    assert hits[0].chunk.text.endswith("v2")
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert all(h.chunk.doc_hash == "policy/fraud.md-v2" for h in hits)
    # writing the same chunks again changes nothing
    store.write(new, new_vectors, ["policy/fraud.md"])
    assert store.count() == 8
    bm25 = store.search("bm25", "quarterly losses", None, ("executives",), 5)
    assert all(h.chunk.doc_id != "exec/q3.md" for h in bm25)


def test_groups_change_is_a_rewrite(filled: tuple[VectorStore, dict[str, Floats]]) -> None:
    store, vectors = filled
    opened = chunks_of("exec/q3.md", version="v2", groups=("all", "executives"))
    store.write(opened, vectors["exec/q3.md"], ["exec/q3.md"])
    hits = store.search("bm25", "quarterly losses board", None, ("all",), 5)
    assert {h.chunk.doc_id for h in hits} == {"exec/q3.md"}


def test_an_interrupted_write_is_visible_as_incomplete(store: VectorStore) -> None:
    rng = np.random.default_rng(9)
    partial = chunks_of("policy/fraud.md", n=4)[:2]  # a crash after two of four chunks
    store.write(partial, unit(rng, 2), ["policy/fraud.md"])
    state = store.indexed()["policy/fraud.md"]
    assert state.chunks == 2
    assert state.expected == 4
    assert not state.complete("policy/fraud.md-v1")
    store.write(chunks_of("policy/fraud.md", n=4), unit(rng, 4), ["policy/fraud.md"])
    assert store.indexed()["policy/fraud.md"].complete("policy/fraud.md-v1")


def test_an_empty_store_answers_empty(store: VectorStore) -> None:
    rng = np.random.default_rng(10)
    assert store.indexed() == {}
    assert store.count() == 0
    for mode in SEARCH_MODES:
        assert store.search(mode, "fraud", unit(rng, 1)[0], ("all",), 5) == []
