"""LanceDB, the local profile's vector store: an embedded folder under the data home.

Dense search is exact (brute force over the vectors, cosine): below some tens of
thousands of chunks it is as fast as an ANN index and never misses a neighbour. Keyword
search is LanceDB's native full-text index (BM25) over the chunk's heading path and
text; rows written after the index was built are searched too (flat), and the index is
rebuilt after each write. Hybrid search fuses the two rankings by reciprocal rank.

``write`` is one ``merge_insert``: one new table version that adds the new chunks and
deletes the replaced ones together, so a reader or a crash never sees half a document.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS
from lancedb.query import MatchQuery

from lakebed.rag.documents import CHUNK_FIELDS, Chunk, embedding_text
from lakebed.rag.embeddings import DIMENSION
from lakebed.rag.store import (
    DocumentState,
    Filters,
    Floats,
    Hit,
    StoreError,
    VectorStore,
    reciprocal_rank_fusion,
)


def schema(dimension: int = DIMENSION) -> pa.Schema:
    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("doc_id", pa.string()),
            ("doc_hash", pa.string()),
            ("n_chunks", pa.int32()),
            ("ordinal", pa.int32()),
            ("title", pa.string()),
            ("path", pa.string()),
            ("heading_path", pa.list_(pa.string())),
            ("anchor", pa.string()),
            ("groups", pa.list_(pa.string())),
            ("text", pa.string()),
            ("body", pa.string()),
            ("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


def _quote(value: str) -> str:
    """A SQL string literal (DataFusion: quotes doubled, backslashes are plain characters)."""
    return "'" + value.replace("'", "''") + "'"


def _where(groups: Sequence[str], filters: Filters) -> str:
    clauses = [f"array_has_any(groups, [{', '.join(_quote(g) for g in groups)}])"]
    if filters.doc_ids is not None:
        if not filters.doc_ids:
            clauses.append("false")
        else:
            clauses.append(f"doc_id IN ({', '.join(_quote(d) for d in filters.doc_ids)})")
    if filters.path_prefix:
        prefix = filters.path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(f"path LIKE {_quote(prefix + '%')} ESCAPE '\\'")
    return " AND ".join(clauses)


class LanceStore(VectorStore):
    def __init__(self, folder: Path, db: Any, name: str, candidates: int) -> None:
        self.folder = folder
        self.name = name
        self.candidates = candidates
        self._db = db
        self._table: Any = None
        self._open_existing()

    def _open_existing(self) -> Any:
        """The table, if it exists by now: another process (``lakebed index``) may have
        created it after this store was opened, e.g. while the API runs."""
        if self._table is None and self.name in self._db.list_tables().tables:
            self._table = self._db.open_table(self.name)
        return self._table

    @classmethod
    def open(cls, folder: Path, name: str, candidates: int = 30) -> LanceStore:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # Interval 0: every read sees the latest version, so a running API serves a
            # re-index (a removed document, narrowed groups) at once, not after a restart.
            db = lancedb.connect(str(folder), read_consistency_interval=timedelta(0))
        except Exception as exc:
            raise StoreError(f"LanceDB at {folder} cannot be opened: {exc}") from exc
        return cls(folder, db, name, candidates)

    def _rows(self, chunks: Sequence[Chunk], vectors: Floats) -> pa.Table:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        return pa.Table.from_pydict(
            {
                "chunk_id": [c.chunk_id for c in chunks],
                "doc_id": [c.doc_id for c in chunks],
                "doc_hash": [c.doc_hash for c in chunks],
                "n_chunks": [c.n_chunks for c in chunks],
                "ordinal": [c.ordinal for c in chunks],
                "title": [c.title for c in chunks],
                "path": [c.path for c in chunks],
                "heading_path": [list(c.heading_path) for c in chunks],
                "anchor": [c.anchor for c in chunks],
                "groups": [list(c.groups) for c in chunks],
                "text": [c.text for c in chunks],
                "body": [embedding_text(c) for c in chunks],
                "vector": [np.asarray(v, dtype=np.float32) for v in vectors],
            },
            schema=schema(vectors.shape[1] if len(vectors) else DIMENSION),
        )

    def write(self, chunks: Sequence[Chunk], vectors: Floats, replace: Collection[str]) -> None:
        stray = {c.doc_id for c in chunks} - set(replace)
        if stray:
            raise ValueError(f"chunks of documents not being replaced: {sorted(stray)[:3]}")
        if not replace:
            return
        rows = self._rows(chunks, vectors)
        if self._open_existing() is None:
            if not chunks:
                return
            self._table = self._db.create_table(self.name, schema=rows.schema)
        doc_filter = f"doc_id IN ({', '.join(_quote(d) for d in sorted(replace))})"
        if not chunks:
            self._table.delete(doc_filter)
        else:
            (
                self._table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(doc_filter)
                .execute(rows)
            )
        # A rebuilt index is a later version; until then new rows are searched flat.
        self._table.create_index("body", config=FTS(), replace=True)

    def indexed(self) -> dict[str, DocumentState]:
        if self._open_existing() is None:
            return {}
        columns = ["doc_id", "doc_hash", "n_chunks"]
        table = self._table.search().select(columns).limit(None).to_arrow().to_pylist()
        hashes: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        expected: dict[str, int] = {}
        for row in table:
            doc = row["doc_id"]
            hashes.setdefault(doc, set()).add(row["doc_hash"])
            counts[doc] = counts.get(doc, 0) + 1
            expected[doc] = max(expected.get(doc, 0), row["n_chunks"])
        return {d: DocumentState(frozenset(hashes[d]), counts[d], expected[d]) for d in hashes}

    def count(self) -> int:
        return 0 if self._open_existing() is None else int(self._table.count_rows())

    def _hits(self, result: pa.Table, score: str, distance: bool = False) -> list[Hit]:
        """Hits best first; a cosine distance becomes a similarity (higher is better)."""
        rows = result.select([*CHUNK_FIELDS, score]).to_pylist()
        return [
            Hit(Chunk.from_record(row), 1.0 - row[score] if distance else float(row[score]))
            for row in rows
        ]

    def _dense(self, vector: Floats, groups: Sequence[str], k: int, filters: Filters) -> list[Hit]:
        if self._open_existing() is None:
            return []
        result = (
            self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
            .metric("cosine")
            .where(_where(groups, filters), prefilter=True)
            .limit(k)
            .to_arrow()
        )
        return self._hits(result, "_distance", distance=True)

    def _keyword(self, query: str, groups: Sequence[str], k: int, filters: Filters) -> list[Hit]:
        if self._open_existing() is None or not query.strip():
            return []
        # A match query, not the query-string syntax: user text is words, not operators.
        result = (
            self._table.search(MatchQuery(query, "body"), query_type="fts")  # type: ignore[call-arg]
            .where(_where(groups, filters), prefilter=True)
            .limit(k)
            .to_arrow()
        )
        return self._hits(result, "_score")

    def _hybrid(
        self, query: str, vector: Floats, groups: Sequence[str], k: int, filters: Filters
    ) -> list[Hit]:
        depth = max(k, self.candidates)
        return reciprocal_rank_fusion(
            [
                self._dense(vector, groups, depth, filters),
                self._keyword(query, groups, depth, filters),
            ],
            k,
        )

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def drop(self) -> None:
        """Remove the table (tests, and ``lakebed index --rebuild``)."""
        if self._table is not None:
            self._db.drop_table(self.name)
            self._table = None
