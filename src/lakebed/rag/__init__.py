"""The enterprise RAG service: internal documents in, cited answers out.

Loaders turn files into sections, sections become chunks, chunks become vectors, a
vector store (LanceDB | Weaviate) answers hybrid queries filtered by the asker's access
groups, and an answerer turns the permitted passages into an answer with citations.
"""
