"""Weaviate, the cluster profile's vector store: a server shared by every API worker.

Dense search is Weaviate's HNSW index (cosine); keyword search is its BM25 over
``body``, the chunk as it is embedded (heading path and text); hybrid search is
Weaviate's own fusion of the two, ranked (reciprocal rank) with equal weights, run in
one request. The access groups and the metadata filters go into every query as a
Weaviate filter, so the server never returns a chunk the asker may not read.

Weaviate has no transactions, so ``write`` orders its steps for crash safety instead:
the new chunks go in first, then the replaced documents' other chunks are deleted. An
object's id is derived from its chunk id and content, so writing a chunk again
overwrites it in place; and whatever step a crash interrupts, the document is left
with chunks of two hashes or the wrong number of chunks, which ``indexed`` reports as
not complete, so the next index run writes it again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import weaviate
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections import Collection as WeaviateCollection
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateBaseError

from lakebed.rag.documents import CHUNK_FIELDS, Chunk, embedding_text
from lakebed.rag.store import DocumentState, Filters, Floats, Hit, StoreError, VectorStore

# The one named vector of the collection; named, because Weaviate 1.38 deprecates the
# unnamed kind, and passed explicitly so a query never depends on the server's default.
VECTOR = "default"
# Weaviate's own rule for collection names (it would silently capitalize the first
# letter, and then a second process asking for the lower-case name finds nothing).
_COLLECTION_NAME = re.compile(r"[A-Z][_0-9A-Za-z]*")
# Fixed forever: object ids derive from it, and changing it would orphan every object.
_CHUNK_NAMESPACE = uuid.UUID("6c0b7e55-2f3a-5d8e-9c41-1a6e3b2d7f90")
# Objects per insert request; a request of 384-float vectors stays ~1.5 MB.
_INSERT_BATCH = 500
# Replaced documents whose stale chunks one delete request selects: the filter lists
# their new object ids, so it must not grow with the whole index run.
_DELETE_DOCS = 100
# Fusion weight of the vector ranking against the BM25 one: equal, as in the
# unweighted reciprocal rank fusion the local profile uses.
_HYBRID_ALPHA = 0.5

_PROPERTIES = list(CHUNK_FIELDS)


def object_id(chunk: Chunk) -> uuid.UUID:
    """The same chunk with the same content is the same object, whatever its document's
    hash: rewriting an unchanged chunk overwrites it instead of adding a twin."""
    return uuid.uuid5(_CHUNK_NAMESPACE, f"{chunk.chunk_id}\x1f{chunk.content_hash}")


def _properties() -> list[Property]:
    """Ids, hashes and paths are tokenized as whole values so that filters on them are
    exact; only ``body`` is indexed for BM25, so keyword search never matches on ids."""

    def exact(name: str) -> Property:
        return Property(
            name=name,
            data_type=DataType.TEXT,
            tokenization=Tokenization.FIELD,
            index_searchable=False,
        )

    return [
        exact("chunk_id"),
        exact("doc_id"),
        exact("doc_hash"),
        exact("anchor"),
        exact("path"),
        Property(name="title", data_type=DataType.TEXT, index_searchable=False),
        Property(name="heading_path", data_type=DataType.TEXT_ARRAY, index_searchable=False),
        Property(
            name="groups",
            data_type=DataType.TEXT_ARRAY,
            tokenization=Tokenization.FIELD,
            index_searchable=False,
        ),
        Property(name="n_chunks", data_type=DataType.INT),
        Property(name="ordinal", data_type=DataType.INT),
        Property(
            name="text",
            data_type=DataType.TEXT,
            index_searchable=False,
            index_filterable=False,
        ),
        Property(
            name="body",
            data_type=DataType.TEXT,
            tokenization=Tokenization.WORD,
            index_searchable=True,
            index_filterable=False,
        ),
    ]


def _row(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "doc_hash": chunk.doc_hash,
        "n_chunks": chunk.n_chunks,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "path": chunk.path,
        "heading_path": list(chunk.heading_path),
        "anchor": chunk.anchor,
        "groups": list(chunk.groups),
        "text": chunk.text,
        "body": embedding_text(chunk),
    }


def _where(groups: Sequence[str], filters: Filters) -> _Filters | None:
    """The access filter and the metadata filters as one Weaviate filter.

    None when nothing can match (an empty ``doc_ids``), so the caller skips the query.
    """
    clauses = [Filter.by_property("groups").contains_any(list(groups))]
    if filters.doc_ids is not None:
        if not filters.doc_ids:
            return None
        clauses.append(Filter.by_property("doc_id").contains_any(list(filters.doc_ids)))
    if filters.path_prefix:
        # `like` has wildcards and no way to escape them: a literal one would widen
        # the match, so refuse rather than return paths outside the prefix.
        if "*" in filters.path_prefix or "?" in filters.path_prefix:
            raise ValueError(
                f"path prefix {filters.path_prefix!r} has a * or ?, which Weaviate's "
                "like filter cannot match literally"
            )
        clauses.append(Filter.by_property("path").like(filters.path_prefix + "*"))
    return Filter.all_of(clauses)


def _vector(vector: Floats) -> list[float]:
    values: list[float] = vector.tolist()
    return values


@contextmanager
def _errors(action: str, collection: str) -> Iterator[None]:
    """Client errors as StoreError, the one error the service turns into a clear reply."""
    try:
        yield
    except WeaviateBaseError as exc:
        raise StoreError(f"Weaviate could not {action} in {collection}: {exc}") from exc


class WeaviateStore(VectorStore):
    def __init__(self, client: weaviate.WeaviateClient, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self._client = client
        self._collection: WeaviateCollection[Any, Any] = client.collections.use(name)
        # False after ``drop``: reads find nothing and the next write creates it again.
        self._exists = False

    @classmethod
    def connect(cls, url: str, collection: str, grpc_port: int) -> WeaviateStore:
        """Connect, and create the collection if it is missing."""
        if not _COLLECTION_NAME.fullmatch(collection):
            raise StoreError(
                f"{collection!r} is not a Weaviate collection name: set rag.collection to "
                "a letter A-Z followed by letters, digits or underscores"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"rag.weaviate_url must be http(s)://host:port, got {url!r}")
        secure = parts.scheme == "https"
        try:
            client = weaviate.connect_to_custom(
                http_host=parts.hostname,
                http_port=parts.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=parts.hostname,
                grpc_port=grpc_port,
                grpc_secure=secure,
                skip_init_checks=False,
            )
        except WeaviateBaseError as exc:
            raise StoreError(
                f"Weaviate at {url} (gRPC port {grpc_port}) is not reachable: start it "
                "with `lakebed services up weaviate`, or point rag.weaviate_url and "
                f"rag.weaviate_grpc_port at a running server ({exc})"
            ) from exc
        store = cls(client, collection, url)
        try:
            store._ensure_collection()
        except BaseException:
            client.close()
            raise
        return store

    def _ensure_collection(self) -> None:
        with _errors("create the collection", self.name):
            if not self._client.collections.exists(self.name):
                self._create_collection()
        self._exists = True

    def _create_collection(self) -> None:
        try:
            self._client.collections.create(
                self.name,
                properties=_properties(),
                vector_config=Configure.Vectors.self_provided(
                    name=VECTOR,
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE
                    ),
                ),
            )
        except WeaviateBaseError:
            # Another process may have created it between the check and now.
            if not self._client.collections.exists(self.name):
                raise

    def write(self, chunks: Sequence[Chunk], vectors: Floats, replace: Collection[str]) -> None:
        stray = {c.doc_id for c in chunks} - set(replace)
        if stray:
            raise ValueError(f"chunks of documents not being replaced: {sorted(stray)[:3]}")
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not replace:
            return
        if not self._exists:
            self._ensure_collection()
        new_ids: dict[str, list[uuid.UUID]] = {doc: [] for doc in replace}
        objects = []
        for chunk, vector in zip(chunks, vectors, strict=True):
            key = object_id(chunk)
            new_ids[chunk.doc_id].append(key)
            objects.append(
                DataObject(properties=_row(chunk), uuid=key, vector={VECTOR: _vector(vector)})
            )
        # Inserts first: until the deletes below are done, the document holds chunks
        # of two versions and reads as incomplete, never as complete but stale.
        for start in range(0, len(objects), _INSERT_BATCH):
            with _errors("insert chunks", self.name):
                result = self._collection.data.insert_many(objects[start : start + _INSERT_BATCH])
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise StoreError(
                    f"Weaviate refused {len(result.errors)} of {len(objects)} chunks "
                    f"in {self.name}, the first: {first.message}"
                )
        docs = sorted(replace)
        for start in range(0, len(docs), _DELETE_DOCS):
            self._delete_stale(docs[start : start + _DELETE_DOCS], new_ids)

    def _delete_stale(self, docs: list[str], new_ids: Mapping[str, list[uuid.UUID]]) -> None:
        stale = Filter.by_property("doc_id").contains_any(docs)
        keep = [key for doc in docs for key in new_ids[doc]]
        if keep:
            stale = stale & Filter.by_id().contains_none(keep)
        # One request deletes at most QUERY_MAXIMUM_RESULTS objects (10,000 by default).
        while True:
            with _errors("delete replaced chunks", self.name):
                result = self._collection.data.delete_many(where=stale)
            if result.failed:
                raise StoreError(
                    f"Weaviate failed to delete {result.failed} replaced chunks in {self.name}"
                )
            if result.matches == 0:
                return

    def indexed(self) -> dict[str, DocumentState]:
        hashes: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        expected: dict[str, int] = {}
        if not self._exists:
            return {}
        with _errors("list chunks", self.name):
            for item in self._collection.iterator(
                return_properties=["doc_id", "doc_hash", "n_chunks"], cache_size=1000
            ):
                props = item.properties
                doc = str(props["doc_id"])
                hashes.setdefault(doc, set()).add(str(props["doc_hash"]))
                counts[doc] = counts.get(doc, 0) + 1
                expected[doc] = max(expected.get(doc, 0), int(props["n_chunks"]))
        return {d: DocumentState(frozenset(hashes[d]), counts[d], expected[d]) for d in hashes}

    def count(self) -> int:
        if not self._exists:
            return 0
        with _errors("count chunks", self.name):
            total = self._collection.aggregate.over_all(total_count=True).total_count
        return total or 0

    def _dense(self, vector: Floats, groups: Sequence[str], k: int, filters: Filters) -> list[Hit]:
        where = _where(groups, filters)
        if where is None or not self._exists:
            return []
        with _errors("search by vector", self.name):
            result = self._collection.query.near_vector(
                _vector(vector),
                target_vector=VECTOR,
                limit=k,
                filters=where,
                return_properties=_PROPERTIES,
                return_metadata=MetadataQuery(distance=True),
            )
        # Cosine distance is 1 - cosine similarity; the service compares the
        # similarity against rag.min_similarity.
        hits = [
            Hit(Chunk.from_record(o.properties), 1.0 - float(o.metadata.distance or 0.0))
            for o in result.objects
        ]
        return sorted(hits, key=lambda hit: -hit.score)

    def _keyword(self, query: str, groups: Sequence[str], k: int, filters: Filters) -> list[Hit]:
        where = _where(groups, filters)
        if where is None or not self._exists or not query.strip():
            return []
        with _errors("search by keyword", self.name):
            result = self._collection.query.bm25(
                query,
                query_properties=["body"],
                limit=k,
                filters=where,
                return_properties=_PROPERTIES,
                return_metadata=MetadataQuery(score=True),
            )
        return self._scored(result.objects)

    def _hybrid(
        self, query: str, vector: Floats, groups: Sequence[str], k: int, filters: Filters
    ) -> list[Hit]:
        where = _where(groups, filters)
        if where is None or not self._exists:
            return []
        with _errors("search hybrid", self.name):
            result = self._collection.query.hybrid(
                query,
                vector=_vector(vector),
                target_vector=VECTOR,
                alpha=_HYBRID_ALPHA,
                fusion_type=HybridFusion.RANKED,
                query_properties=["body"],
                limit=k,
                filters=where,
                return_properties=_PROPERTIES,
                return_metadata=MetadataQuery(score=True),
            )
        return self._scored(result.objects)

    @staticmethod
    def _scored(objects: Sequence[Any]) -> list[Hit]:
        hits = [
            Hit(Chunk.from_record(o.properties), float(o.metadata.score or 0.0)) for o in objects
        ]
        return sorted(hits, key=lambda hit: -hit.score)

    def drop(self) -> None:
        """Remove the collection (tests, and ``lakebed index --rebuild``)."""
        with _errors("delete the collection", self.name):
            self._client.collections.delete(self.name)
        self._exists = False

    def close(self) -> None:
        self._client.close()
