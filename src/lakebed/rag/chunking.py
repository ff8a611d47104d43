"""Chunking: sections first, then size with overlap.

A chunk never crosses a section boundary, so every chunk has one heading path to cite;
within a section LangChain's recursive splitter cuts at paragraphs, then lines, then
sentences, then words, with some overlap so that a fact cut in two is whole in one.
Chunk ids are the document id and the chunk's position in it: a changed document
replaces all of its chunks at once (see ``VectorStore.write``).
"""

from __future__ import annotations

from collections.abc import Iterable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from lakebed.rag.documents import Chunk, Document

_SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


def splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=_SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_document(document: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    split = splitter(chunk_size, chunk_overlap)
    pieces = [
        (section, text)
        for section in document.sections
        for text in split.split_text(section.text)
        if text.strip()
    ]
    return [
        Chunk(
            chunk_id=f"{document.doc_id}::{ordinal:04d}",
            doc_id=document.doc_id,
            doc_hash=document.content_hash,
            n_chunks=len(pieces),
            ordinal=ordinal,
            title=document.title,
            path=document.path,
            heading_path=section.heading_path,
            anchor=section.anchor,
            groups=document.groups,
            text=text.strip(),
        )
        for ordinal, (section, text) in enumerate(pieces)
    ]


def chunk_documents(
    documents: Iterable[Document], chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    return [c for d in documents for c in chunk_document(d, chunk_size, chunk_overlap)]
