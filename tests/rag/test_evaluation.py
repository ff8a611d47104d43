"""Retrieval metrics on hand-computed cases, and the goal on the shipped QA set."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from lakebed.config import Settings
from lakebed.rag.evaluation import (
    Relevant,
    evaluate,
    judge,
    load_questions,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    section_ranking,
)
from lakebed.rag.index import load_sources
from lakebed.rag.service import RagService
from tests.rag.test_store_contract import chunks_of

REL = (Relevant("a.md", "Deadlines"), Relevant("b.md", "Codes"))


def test_judging_credits_each_ground_truth_section_once() -> None:
    ranking = [
        ("c.md", ("C", "Deadlines")),  # right heading, wrong document
        ("a.md", ("A", "Deadlines", "Evidence")),  # a subsection counts
        ("a.md", ("A", "Deadlines")),  # the same truth again: no second credit
        ("b.md", ("B", "Codes")),
    ]
    assert judge(ranking, REL) == [-1, 0, -1, 1]


def test_metrics_by_hand() -> None:
    judged = [-1, 0, -1, 1]
    assert recall_at(judged, 2, 1) == 0.0
    assert recall_at(judged, 2, 2) == 0.5
    assert recall_at(judged, 2, 4) == 1.0
    assert reciprocal_rank(judged) == 0.5
    assert reciprocal_rank([-1, -1]) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(judged, 2) == pytest.approx(dcg / ideal)
    assert ndcg_at([0], 1) == 1.0
    # only the top 10 count
    assert ndcg_at([-1] * 10 + [0], 1) == 0.0


def test_sections_rank_by_their_first_chunk() -> None:
    chunks = chunks_of("policy/fraud.md", n=3)
    same = [chunks[0], chunks[0], chunks[2], chunks[1]]
    assert section_ranking(same) == [
        ("policy/fraud.md", ("Title", "Section 0")),
        ("policy/fraud.md", ("Title", "Section 2")),
        ("policy/fraud.md", ("Title", "Section 1")),
    ]


def test_the_shipped_qa_set_points_at_real_sections() -> None:
    questions = load_questions()
    assert len(questions) >= 50
    assert len({q.qid for q in questions}) == len(questions)
    documents = {d.doc_id: d for d in load_sources(Settings(), with_catalog=False).documents}
    for question in questions:
        for relevant in question.relevant:
            document = documents[relevant.doc]
            assert any(relevant.section in s.heading_path for s in document.sections), relevant
            assert set(document.groups) & set(question.groups), question.qid


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagService]:
    service = RagService.open(Settings(data_home=tmp_path_factory.mktemp("eval-home")))
    service.index(with_catalog=False)
    yield service
    service.close()


def test_hybrid_beats_bm25_and_dense_on_ndcg(rag: RagService) -> None:
    """The issue's goal, on the shipped QA set and the local store."""
    report = evaluate(rag.retriever, rag.answerer, load_questions())
    hybrid, dense, bm25 = report.mode("hybrid"), report.mode("dense"), report.mode("bm25")
    assert hybrid.ndcg > dense.ndcg
    assert hybrid.ndcg > bm25.ndcg
    assert hybrid.recall[10] >= max(dense.recall[10], bm25.recall[10])
    # not a toy set: neither side alone finds everything
    assert max(dense.ndcg, bm25.ndcg) < 0.9
    assert report.answered == 1.0
    assert report.citation_precision > 0.5
