"""What the RAG service indexes: documents made of sections, sections cut into chunks.

A document's id is its path relative to the corpus root (POSIX separators), so it stays
stable when the content changes; the content hash says whether it did. A section is the
text under one heading, with the full heading path from the document's title down, and
an anchor that a citation links to (``#slug`` for headed formats, ``#page=N`` for PDF).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Section:
    """The text under one heading (not including its subsections' text)."""

    heading_path: tuple[str, ...]
    anchor: str
    text: str

    @property
    def heading(self) -> str:
        return HEADING_SEPARATOR.join(self.heading_path)


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    path: str
    format: str
    groups: tuple[str, ...]
    modified: datetime
    content_hash: str
    sections: tuple[Section, ...] = field(default=())


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage; ``groups`` travel with it so the store can filter."""

    chunk_id: str
    doc_id: str
    doc_hash: str
    n_chunks: int
    ordinal: int
    title: str
    path: str
    heading_path: tuple[str, ...]
    anchor: str
    groups: tuple[str, ...]
    text: str

    @property
    def heading(self) -> str:
        return HEADING_SEPARATOR.join(self.heading_path)

    @property
    def content_hash(self) -> str:
        """What the embedding depends on: the text and the headings it is embedded with."""
        return sha256_text(embedding_text(self))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Chunk:
        """A chunk back from a store's row; a store may leave out empty values
        (Weaviate drops empty strings and arrays), which come back empty."""
        return cls(
            chunk_id=str(record.get("chunk_id") or ""),
            doc_id=str(record.get("doc_id") or ""),
            doc_hash=str(record.get("doc_hash") or ""),
            n_chunks=int(record.get("n_chunks") or 0),
            ordinal=int(record.get("ordinal") or 0),
            title=str(record.get("title") or ""),
            path=str(record.get("path") or ""),
            heading_path=tuple(record.get("heading_path") or ()),
            anchor=str(record.get("anchor") or ""),
            groups=tuple(record.get("groups") or ()),
            text=str(record.get("text") or ""),
        )


# What a store keeps of a chunk besides its vector and keyword field, in field order.
CHUNK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Chunk))


def embedding_text(chunk: Chunk) -> str:
    """The heading path goes into the vector too: a passage reading "Within 24 hours."
    means nothing without "Chargeback handling > Deadlines" above it."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slugify(heading: str) -> str:
    """GitHub's anchor rule, near enough: lower case, punctuation dropped, spaces to dashes."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"\s", "-", slug)
