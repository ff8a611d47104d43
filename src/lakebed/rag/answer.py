"""Answers with numbered citations, extractive by default, generated when an LLM is configured.

Only passages retrieved for the asker (so already filtered by their groups) reach the
answerer, and every citation points at one of them: nothing outside what the asker may
read can be quoted, cited or paraphrased.

When the closest passage the asker may read is still far from the question (cosine
similarity below ``rag.min_similarity``), the answer says that nothing relevant was
found rather than stitching together the least bad sentences. The message is the same
whether or not a document the asker may not read would have matched: no hinting.

Extractive answers take the sentences of the first passages closest to the question (by
the same embedding model), each followed by its citation. With ``rag.llm_base_url`` set, the
passages go to an OpenAI-compatible chat endpoint with the instruction to answer only
from them and cite by number; citations it invents (numbers with no passage) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np

from lakebed.rag.retrieval import Retriever
from lakebed.rag.store import Filters, Hit, SearchMode

if TYPE_CHECKING:
    from lakebed.config import RagSettings

NOT_FOUND = "I could not find anything about that in the documents you have access to."
MAX_SENTENCES = 3
# Extractive answers quote from the first passages only, and only sentences nearly as
# close to the question as the best one: on the QA set this raises citation precision
# from 0.45 (any of five passages, top three sentences) to 0.56 at no loss of answers.
QUOTED_PASSAGES = 3
SENTENCE_MARGIN = 0.1
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(`A-Z0-9])")


class GenerationError(RuntimeError):
    """The configured LLM endpoint failed; the message says how."""


@dataclass(frozen=True)
class Citation:
    number: int
    doc_id: str
    title: str
    section: str
    link: str
    chunk_id: str
    groups: tuple[str, ...]


@dataclass
class Answer:
    question: str
    text: str
    found: bool
    method: Literal["extractive", "generated", "none"]
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    similarity: float = -1.0

    def as_dict(self, with_passages: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {
            "question": self.question,
            "answer": self.text,
            "found": self.found,
            "method": self.method,
            "citations": [
                {
                    "number": c.number,
                    "document": c.doc_id,
                    "title": c.title,
                    "section": c.section,
                    "link": c.link,
                }
                for c in self.citations
            ],
        }
        if with_passages:
            result["passages"] = [
                {
                    # No score: BM25 weights come from the whole collection, so a raw
                    # score would tell whether forbidden documents contain a word.
                    "rank": rank,
                    "document": h.chunk.doc_id,
                    "section": h.chunk.heading,
                    "link": h.chunk.path + h.chunk.anchor,
                    "text": h.chunk.text,
                }
                for rank, h in enumerate(self.passages, start=1)
            ]
        return result


def sentences(text: str) -> list[str]:
    """Sentences and list items of a passage, without list markers; a command in a code
    block is one candidate, its backslash-continued lines joined and set in backticks."""
    out: list[str] = []
    in_code = False
    pending = ""
    for raw in text.splitlines():
        if _FENCE.match(raw):
            in_code = not in_code
            continue
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        if pending:
            line, pending = pending + line, ""
        if in_code:
            if len(line.split()) >= 2:
                out.append(f"`{line}`")
            continue
        line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).strip()
        if line.startswith("|"):
            line = line.strip("| ")
        out += [s.strip() for s in _SENTENCE_END.split(line) if len(s.split()) >= 4]
    if pending.strip():
        out.append(f"`{pending.strip()}`" if in_code else pending.strip())
    return out


def _citation(number: int, hit: Hit) -> Citation:
    chunk = hit.chunk
    return Citation(
        number, chunk.doc_id, chunk.title, chunk.heading, chunk.path + chunk.anchor,
        chunk.chunk_id, chunk.groups,
    )  # fmt: skip


class Answerer:
    def __init__(self, retriever: Retriever, settings: RagSettings) -> None:
        self.retriever = retriever
        self.settings = settings

    def ask(
        self,
        question: str,
        groups: Sequence[str],
        mode: SearchMode = "hybrid",
        filters: Filters | None = None,
    ) -> Answer:
        """The answer from the passages ``groups`` may read, narrowed by ``filters``."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        found = self.retriever.search(question, groups, mode, self.settings.top_k, filters)
        similarity = self.retriever.best_similarity(found.vector, groups, filters)
        if not found.hits or similarity < self.settings.min_similarity:
            return Answer(question, NOT_FOUND, False, "none", [], found.hits, similarity)
        if self.settings.llm_base_url:
            answer = self._generate(question, found.hits)
        else:
            answer = self._extract(question, found.vector, found.hits)
        answer.similarity = similarity
        return answer

    def _extract(self, question: str, query: np.ndarray[Any, Any], hits: list[Hit]) -> Answer:
        candidates: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, hit in enumerate(hits[:QUOTED_PASSAGES]):
            for sentence in sentences(hit.chunk.text):
                key = " ".join(sentence.lower().split())
                if key not in seen:  # overlapping chunks repeat sentences
                    seen.add(key)
                    candidates.append((index, sentence))
        if not candidates:
            return Answer(question, NOT_FOUND, False, "none", [], hits)
        vectors = self.retriever.model.encode([s for _, s in candidates])
        # Closeness to the question, nudged towards the passages retrieval ranked first.
        scores = vectors @ query - 0.02 * np.array([i for i, _ in candidates])
        order = [
            position
            for position in np.argsort(-scores, kind="stable")[:MAX_SENTENCES]
            if scores[position] >= scores.max() - SENTENCE_MARGIN
        ]
        numbers: dict[int, int] = {}
        parts = []
        for position in order:
            index, sentence = candidates[int(position)]
            number = numbers.setdefault(index, len(numbers) + 1)
            parts.append(f"{sentence} [{number}]")
        citations = [_citation(n, hits[i]) for i, n in numbers.items()]
        return Answer(question, " ".join(parts), True, "extractive", citations, hits)

    def _generate(self, question: str, hits: list[Hit]) -> Answer:
        context = "\n\n".join(
            f"[{n}] {h.chunk.title} — {h.chunk.heading}\n{h.chunk.text}"
            for n, h in enumerate(hits, start=1)
        )
        messages = [
            {
                "role": "system",
                "content": "You answer questions about Northwind Payments' internal documents. "
                "Use only the numbered passages given. After each claim, cite the passage "
                "number in square brackets, e.g. [2]. If the passages do not answer the "
                f"question, reply exactly: {NOT_FOUND}",
            },
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
        ]
        text = self._chat(messages)
        if NOT_FOUND in text:
            return Answer(question, NOT_FOUND, False, "generated", [], hits)
        cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)})
        valid = [n for n in cited if 1 <= n <= len(hits)]
        if not valid:
            # An answer that cites none of the passages is not grounded in them.
            return Answer(question, NOT_FOUND, False, "generated", [], hits)
        # A number with no passage behind it is removed from the text, not just the list.
        text = re.sub(
            r"\[(\d+)\]", lambda m: m.group(0) if int(m.group(1)) in valid else "", text
        ).strip()
        citations = [_citation(n, hits[n - 1]) for n in valid]
        return Answer(question, text, True, "generated", citations, hits)

    def _chat(self, messages: list[dict[str, str]]) -> str:
        assert self.settings.llm_base_url is not None
        url = self.settings.llm_base_url.rstrip("/") + "/chat/completions"
        headers = {}
        if self.settings.llm_api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.llm_api_key.get_secret_value()}"
        body = {"model": self.settings.llm_model or "default", "messages": messages}
        try:
            response = httpx.post(
                url, json=body, headers=headers, timeout=self.settings.llm_timeout_seconds
            )
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"])
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise GenerationError(f"the LLM endpoint {url} failed: {exc}") from exc
