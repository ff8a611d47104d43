"""Retrieval and answer quality on the shipped QA set.

The unit of relevance is a section: a question's ground truth names the document and
the heading under which the answer is written, and a retrieved chunk counts when it is
in that document under that heading (at any depth). Rankings are judged on distinct
sections, in the order their first chunk was retrieved, so five chunks of one section
are one hit, not five.

- recall@k: the share of a question's relevant sections among the first k sections;
- MRR: the mean of 1 / rank of the first relevant section (0 when none in the top 10);
- nDCG@10: binary gains, ideal ranking = all relevant sections first;
- citation precision: of the citations in answers, the share that point to a relevant
  section.

Each question is asked as a user holding exactly the groups of its relevant documents,
so access control is part of what is measured, not switched off for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakebed.rag.answer import Answerer
from lakebed.rag.documents import Chunk
from lakebed.rag.retrieval import Retriever
from lakebed.rag.store import SEARCH_MODES, SearchMode

SHIPPED_QA = Path(__file__).parent / "qa.jsonl"
DEPTH = 10
RECALL_AT = (1, 3, 5, 10)


@dataclass(frozen=True)
class Relevant:
    doc: str
    section: str


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    relevant: tuple[Relevant, ...]
    groups: tuple[str, ...]
    answer: str = ""


def load_questions(path: Path = SHIPPED_QA) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            questions.append(
                Question(
                    raw["id"],
                    raw["question"],
                    tuple(Relevant(r["doc"], r["section"]) for r in raw["relevant"]),
                    tuple(raw.get("groups", ["all"])),
                    raw.get("answer", ""),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a QA entry: {exc}") from exc
    return questions


def section_ranking(chunks: Sequence[Chunk]) -> list[tuple[str, tuple[str, ...]]]:
    """Distinct (document, heading path) in order of first appearance."""
    seen: dict[tuple[str, tuple[str, ...]], None] = {}
    for chunk in chunks:
        seen.setdefault((chunk.doc_id, chunk.heading_path), None)
    return list(seen)


def judge(
    ranking: Sequence[tuple[str, tuple[str, ...]]], relevant: Sequence[Relevant]
) -> list[int]:
    """For each ranked section, the index of the ground truth it satisfies, or -1.

    A ground-truth section is credited once: its first matching ranked section.
    """
    credited: set[int] = set()
    out = []
    for doc, path in ranking:
        hit = next(
            (
                i
                for i, r in enumerate(relevant)
                if i not in credited and doc == r.doc and r.section in path
            ),
            -1,
        )
        if hit >= 0:
            credited.add(hit)
        out.append(hit)
    return out


def recall_at(judged: Sequence[int], n_relevant: int, k: int) -> float:
    return sum(1 for j in judged[:k] if j >= 0) / n_relevant


def reciprocal_rank(judged: Sequence[int]) -> float:
    return next((1.0 / rank for rank, j in enumerate(judged, start=1) if j >= 0), 0.0)


def ndcg_at(judged: Sequence[int], n_relevant: int, k: int = DEPTH) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, j in enumerate(judged[:k], 1) if j >= 0)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_relevant, k) + 1))
    return dcg / ideal


@dataclass
class ModeScores:
    mode: SearchMode
    recall: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0
    ndcg: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0


@dataclass
class EvalReport:
    questions: int
    modes: list[ModeScores]
    citation_precision: float
    answered: float
    misses: dict[SearchMode, list[str]] = field(default_factory=dict)

    def mode(self, mode: SearchMode) -> ModeScores:
        return next(m for m in self.modes if m.mode == mode)


def evaluate(
    retriever: Retriever,
    answerer: Answerer | None,
    questions: Sequence[Question],
    modes: Sequence[SearchMode] = SEARCH_MODES,
    on_progress: Callable[[int], None] | None = None,
) -> EvalReport:
    import numpy as np

    retriever.model.warm_up()  # loading the model is not a query's latency
    scores = []
    misses: dict[SearchMode, list[str]] = {}
    for mode in modes:
        recalls: dict[int, list[float]] = {k: [] for k in RECALL_AT}
        rrs, ndcgs, latencies = [], [], []
        for question in questions:
            # Sections, not chunks, are ranked: fetch enough chunks for DEPTH sections.
            found = retriever.search(question.question, question.groups, mode, k=DEPTH * 3)
            latencies.append(found.seconds * 1000)
            judged = judge(
                section_ranking([h.chunk for h in found.hits])[:DEPTH], question.relevant
            )
            n = len(question.relevant)
            for k in RECALL_AT:
                recalls[k].append(recall_at(judged, n, k))
            rrs.append(reciprocal_rank(judged))
            ndcgs.append(ndcg_at(judged, n))
            if rrs[-1] == 0.0:
                misses.setdefault(mode, []).append(question.qid)
            if on_progress is not None:
                on_progress(1)
        scores.append(
            ModeScores(
                mode,
                {k: float(np.mean(v)) for k, v in recalls.items()},
                float(np.mean(rrs)),
                float(np.mean(ndcgs)),
                float(np.percentile(latencies, 50)),
                float(np.percentile(latencies, 99)),
            )
        )
    cited = relevant_cited = answered = 0
    if answerer is not None:
        for question in questions:
            answer = answerer.ask(question.question, question.groups)
            answered += answer.found
            for citation in answer.citations:
                cited += 1
                relevant_cited += any(
                    citation.doc_id == r.doc and r.section in citation.section.split(" > ")
                    for r in question.relevant
                )
            if on_progress is not None:
                on_progress(1)
    return EvalReport(
        len(questions),
        scores,
        relevant_cited / cited if cited else 0.0,
        answered / len(questions) if answerer is not None and questions else 0.0,
        misses,
    )
