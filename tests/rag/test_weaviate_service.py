"""deploy/weaviate/weaviate.sh and WeaviateStore against real servers.

The lifecycle tests run servers of their own (on ports found free), so stopping one
never takes the session's server away from the store tests. The store tests use
random unit vectors: what is under test is filtering, replacing and crash repair,
not the quality of an embedding model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakebed.rag import weaviate_store as weaviate_store_module
from lakebed.rag.documents import Chunk, sha256_text
from lakebed.rag.store import SEARCH_MODES, Filters, Floats, SearchMode, StoreError
from lakebed.rag.weaviate_store import WeaviateStore
from lakebed.services import ServiceError, WeaviateServer
from tests.rag.conftest import free_http_port

DIMENSION = 384


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WeaviateServer]:
    http = free_http_port(18600)
    server = WeaviateServer(tmp_path / "weaviate", http, http + 1)
    yield server
    server.down()


# ---- the script ------------------------------------------------------------------


def test_up_health_down_and_restart_keeps_data(server: WeaviateServer) -> None:
    assert not server.healthy()  # never started
    server.up()
    assert server.healthy()
    store = WeaviateStore.connect(server.url, "Kept", server.grpc_port)
    store.write(*_document("keep.md", ("ops",), ["survives a restart"]), replace={"keep.md"})
    store.close()

    server.down()
    assert not server.healthy()
    server.down()  # stopping a stopped server is fine

    server.up()
    store = WeaviateStore.connect(server.url, "Kept", server.grpc_port)
    try:
        assert store.count() == 1
    finally:
        store.close()


def test_up_twice_is_idempotent(server: WeaviateServer) -> None:
    server.up()
    pid = (server.home / "weaviate.pid").read_text()
    server.up()
    assert (server.home / "weaviate.pid").read_text() == pid
    assert server.healthy()


def test_up_on_other_ports_of_a_running_home_fails(server: WeaviateServer) -> None:
    server.up()
    moved = WeaviateServer(server.home, server.http_port + 10, server.grpc_port + 10)
    with pytest.raises(ServiceError, match="already serves Weaviate"):
        moved.up()


def test_a_second_server_runs_beside(
    server: WeaviateServer, weaviate_server: WeaviateServer
) -> None:
    server.up()
    assert server.healthy()
    assert weaviate_server.healthy()
    store = WeaviateStore.connect(server.url, "Beside", server.grpc_port)
    try:
        store.write(*_document("a.md", ("ops",), ["only here"]), replace={"a.md"})
        assert store.count() == 1
    finally:
        store.close()
    other = WeaviateStore.connect(weaviate_server.url, "Beside", weaviate_server.grpc_port)
    try:
        assert other.count() == 0
    finally:
        other.drop()
        other.close()


def test_a_taken_port_is_reported(server: WeaviateServer, tmp_path: Path) -> None:
    server.up()
    clash = WeaviateServer(tmp_path / "clash", server.http_port, server.grpc_port)
    with pytest.raises(ServiceError, match="taken by another process"):
        clash.up()


def test_clashing_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="is also the grpc port"):
        # gRPC on the gossip port of the http port.
        WeaviateServer(tmp_path / "w", 18700, 18702).up()


def test_connect_to_nothing_says_how_to_start() -> None:
    port = free_http_port(18800)
    with pytest.raises(StoreError, match="lakebed services up weaviate"):
        WeaviateStore.connect(f"http://127.0.0.1:{port}", "Nothing", port + 1)


def test_a_bad_collection_name_is_refused(weaviate_server: WeaviateServer) -> None:
    with pytest.raises(StoreError, match=r"rag\.collection"):
        WeaviateStore.connect(weaviate_server.url, "lower-case", weaviate_server.grpc_port)


# ---- the store -------------------------------------------------------------------

RNG = np.random.default_rng(384)


def _unit(n: int) -> Floats:
    vectors = RNG.normal(size=(n, DIMENSION)).astype(np.float32)
    normed: Floats = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def _document(
    doc_id: str, groups: tuple[str, ...], texts: Sequence[str], version: str = "v1"
) -> tuple[list[Chunk], Floats]:
    doc_hash = sha256_text(f"{doc_id}:{version}")
    chunks = [
        Chunk(
            chunk_id=f"{doc_id}::{i:04d}",
            doc_id=doc_id,
            doc_hash=doc_hash,
            n_chunks=len(texts),
            ordinal=i,
            title=doc_id.rsplit("/", 1)[-1],
            path=doc_id,
            heading_path=(doc_id, f"Part {i}") if i else (),
            anchor=f"#part-{i}" if i else "",
            groups=groups,
            text=text,
        )
        for i, text in enumerate(texts)
    ]
    return chunks, _unit(len(chunks))


RUNBOOK = ("ops/runbook.md", ("ops",), ["Restart the ledger worker.", "Page the on-call."])
FEES = ("finance/fees.md", ("finance",), ["Chargeback fees are booked monthly.", "Refunds."])
CALENDAR = ("shared/calendar.md", ("ops", "finance"), ["Holidays freeze deploys."])


@pytest.fixture
def three_docs(weaviate_store: WeaviateStore) -> dict[str, tuple[list[Chunk], Floats]]:
    docs = {spec[0]: _document(*spec) for spec in (RUNBOOK, FEES, CALENDAR)}
    chunks = [c for chunks, _ in docs.values() for c in chunks]
    vectors = np.concatenate([v for _, v in docs.values()])
    weaviate_store.write(chunks, vectors, replace=set(docs))
    return docs


def _search(
    store: WeaviateStore,
    mode: SearchMode,
    query: str,
    vector: Floats,
    groups: Sequence[str],
    filters: Filters | None = None,
) -> list[Chunk]:
    hits = store.search(mode, query, vector, groups, 10, filters)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    return [hit.chunk for hit in hits]


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_search_returns_only_what_the_groups_may_read(
    weaviate_store: WeaviateStore,
    three_docs: dict[str, tuple[list[Chunk], Floats]],
    mode: SearchMode,
) -> None:
    fees, fee_vectors = three_docs["finance/fees.md"]
    # The query is the fee chunk itself: its best match, were it not forbidden.
    query, vector = "chargeback fees", fee_vectors[0]
    for groups in (["ops"], ["finance"], ["ops", "finance"], ["nobody"]):
        chunks = _search(weaviate_store, mode, query, vector, groups)
        assert chunks or mode == "bm25" or groups == ["nobody"]
        assert all(set(c.groups) & set(groups) for c in chunks), (groups, chunks)
    assert _search(weaviate_store, mode, query, vector, []) == []
    best = _search(weaviate_store, mode, query, vector, ["finance"])[0]
    assert best == fees[0]  # rebuilt whole from the properties


def test_scores(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    _, vectors = three_docs["ops/runbook.md"]
    dense = weaviate_store.search("dense", "", vectors[1], ["ops"], 10)
    # Cosine similarity: the chunk's own vector scores 1.
    assert dense[0].chunk.ordinal == 1
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= hit.score <= 1.0 for hit in dense)
    bm25 = weaviate_store.search("bm25", "ledger worker", None, ["ops"], 10)
    assert [hit.chunk.chunk_id for hit in bm25] == ["ops/runbook.md::0000"]
    assert bm25[0].score > 0
    # The heading path is searchable with the text: it is part of what is embedded.
    headed = weaviate_store.search("bm25", "part", None, ["ops"], 10)
    assert {hit.chunk.chunk_id for hit in headed} == {"ops/runbook.md::0001"}


def test_filters(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    _, vectors = three_docs["ops/runbook.md"]
    everyone = ["ops", "finance"]
    by_doc = _search(
        weaviate_store, "dense", "", vectors[0], everyone, Filters(doc_ids=("shared/calendar.md",))
    )
    assert {c.doc_id for c in by_doc} == {"shared/calendar.md"}
    by_path = _search(
        weaviate_store, "hybrid", "fees", vectors[0], everyone, Filters(path_prefix="fin")
    )
    assert {c.doc_id for c in by_path} == {"finance/fees.md"}
    # Filters narrow the groups' reach, never widen it.
    assert (
        _search(weaviate_store, "dense", "", vectors[0], ["ops"], Filters(path_prefix="fin")) == []
    )
    assert _search(weaviate_store, "dense", "", vectors[0], everyone, Filters(doc_ids=())) == []
    with pytest.raises(ValueError, match="cannot match literally"):
        weaviate_store.search("dense", "", vectors[0], everyone, 5, Filters(path_prefix="f*"))


def test_indexed_reports_complete_documents(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    indexed = weaviate_store.indexed()
    assert set(indexed) == set(three_docs)
    for doc_id, (chunks, _) in three_docs.items():
        assert indexed[doc_id].complete(chunks[0].doc_hash)
    assert weaviate_store.count() == 5


def test_writing_the_same_chunks_again_changes_nothing(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    before = weaviate_store.indexed()
    chunks, vectors = three_docs["ops/runbook.md"]
    weaviate_store.write(chunks, vectors, replace={"ops/runbook.md"})
    assert weaviate_store.indexed() == before
    assert weaviate_store.count() == 5


def test_replace_a_document(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    new, vectors = _document(
        "ops/runbook.md",
        ("ops",),
        ["Restart the ledger worker.", "Drain first.", "Then page."],
        "v2",
    )
    weaviate_store.write(new, vectors, replace={"ops/runbook.md"})
    state = weaviate_store.indexed()["ops/runbook.md"]
    assert state.complete(new[0].doc_hash)
    assert weaviate_store.count() == 6
    # Seen by the very next search: no refresh interval to wait out.
    assert _search(weaviate_store, "bm25", "drain", vectors[1], ["ops"]) == [new[1]]
    assert _search(weaviate_store, "bm25", "page on-call", vectors[1], ["ops"]) == [new[2]]
    # The other documents are untouched.
    assert weaviate_store.indexed()["finance/fees.md"].complete(
        three_docs["finance/fees.md"][0][0].doc_hash
    )


def test_delete_a_document(
    weaviate_store: WeaviateStore, three_docs: dict[str, tuple[list[Chunk], Floats]]
) -> None:
    weaviate_store.write([], np.zeros((0, DIMENSION), np.float32), replace={"finance/fees.md"})
    assert set(weaviate_store.indexed()) == {"ops/runbook.md", "shared/calendar.md"}
    assert weaviate_store.count() == 3
    assert _search(weaviate_store, "bm25", "chargeback", _unit(1)[0], ["finance"]) == []


def test_chunks_outside_replace_are_refused(weaviate_store: WeaviateStore) -> None:
    chunks, vectors = _document("a.md", ("ops",), ["text"])
    with pytest.raises(ValueError, match="not being replaced"):
        weaviate_store.write(chunks, vectors, replace={"b.md"})


class _CrashError(Exception):
    """Stands for the process dying: nothing after it runs."""


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param(
            ["Restart the ledger worker.", "Page the on-call twice.", "New."], id="longer"
        ),
        # The first chunk is unchanged, so its object is overwritten in place.
        pytest.param(["Restart the ledger worker."], id="shorter"),
    ],
)
def test_a_crash_between_insert_and_delete_is_seen_and_repaired(
    weaviate_store: WeaviateStore,
    three_docs: dict[str, tuple[list[Chunk], Floats]],
    monkeypatch: pytest.MonkeyPatch,
    texts: list[str],
) -> None:
    new, vectors = _document("ops/runbook.md", ("ops",), texts, "v2")

    def crash(*_args: object) -> None:
        raise _CrashError

    with monkeypatch.context() as patch:
        patch.setattr(WeaviateStore, "_delete_stale", crash)
        with pytest.raises(_CrashError):
            weaviate_store.write(new, vectors, replace={"ops/runbook.md"})
    assert not weaviate_store.indexed()["ops/runbook.md"].complete(new[0].doc_hash)

    weaviate_store.write(new, vectors, replace={"ops/runbook.md"})
    assert weaviate_store.indexed()["ops/runbook.md"].complete(new[0].doc_hash)
    assert weaviate_store.count() == 3 + len(texts)


def test_a_crash_between_inserts_is_seen_and_repaired(
    weaviate_store: WeaviateStore,
    three_docs: dict[str, tuple[list[Chunk], Floats]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new, vectors = _document("ops/runbook.md", ("ops",), ["One.", "Two.", "Three."], "v2")
    data = weaviate_store._collection.data
    insert_many = data.insert_many
    calls: list[int] = []

    def insert_once(objects: Any) -> Any:
        if calls:
            raise _CrashError
        calls.append(len(objects))
        return insert_many(objects)

    with monkeypatch.context() as patch:
        patch.setattr(weaviate_store_module, "_INSERT_BATCH", 1)
        patch.setattr(data, "insert_many", insert_once)
        with pytest.raises(_CrashError):
            weaviate_store.write(new, vectors, replace={"ops/runbook.md"})
    assert calls == [1]
    state = weaviate_store.indexed()["ops/runbook.md"]
    assert state.hashes == {new[0].doc_hash, three_docs["ops/runbook.md"][0][0].doc_hash}
    assert not state.complete(new[0].doc_hash)

    weaviate_store.write(new, vectors, replace={"ops/runbook.md"})
    assert weaviate_store.indexed()["ops/runbook.md"].complete(new[0].doc_hash)


def test_many_documents_in_one_write(weaviate_store: WeaviateStore) -> None:
    """More objects than one insert request and more documents than one delete holds."""
    docs = [_document(f"bulk/{i:03d}.md", ("ops",), ["a", "b", "c"]) for i in range(250)]
    chunks = [c for chunks, _ in docs for c in chunks]
    weaviate_store.write(chunks, np.concatenate([v for _, v in docs]), {c.doc_id for c in chunks})
    assert weaviate_store.count() == 750
    shorter = [_document(f"bulk/{i:03d}.md", ("ops",), ["a"], "v2") for i in range(250)]
    chunks = [c for chunks, _ in shorter for c in chunks]
    weaviate_store.write(
        chunks, np.concatenate([v for _, v in shorter]), {c.doc_id for c in chunks}
    )
    assert weaviate_store.count() == 250
    indexed = weaviate_store.indexed()
    assert len(indexed) == 250
    assert all(indexed[c.doc_id].complete(c.doc_hash) for c in chunks)


def test_drop_then_write_creates_the_collection_again(weaviate_store: WeaviateStore) -> None:
    chunks, vectors = _document("a.md", ("ops",), ["text"])
    weaviate_store.write(chunks, vectors, {"a.md"})
    weaviate_store.drop()
    assert weaviate_store.count() == 0
    assert weaviate_store.indexed() == {}
    assert weaviate_store.search("dense", "", vectors[0], ["ops"], 5) == []
    weaviate_store.write(chunks, vectors, {"a.md"})
    assert weaviate_store.count() == 1
