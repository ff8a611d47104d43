"""The RAG service end to end, on both stores, with the real model and the shipped corpus:
the user x document access matrix, cited answers, "not found", LangChain components."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever

from lakebed.config import Settings
from lakebed.rag.answer import NOT_FOUND, Answerer, sentences
from lakebed.rag.chunking import chunk_document
from lakebed.rag.components import LakebedRetriever, answer_chain
from lakebed.rag.documents import Document
from lakebed.rag.index import load_sources
from lakebed.rag.lance_store import LanceStore
from lakebed.rag.service import RagService
from lakebed.rag.store import SEARCH_MODES, Filters
from lakebed.rag.users import UnknownUserError
from lakebed.rag.weaviate_store import WeaviateStore
from lakebed.services import WeaviateServer

OFF_TOPIC = [
    "What is the best recipe for sourdough bread?",
    "Who won the football world cup in 1998?",
    "How do I repot an orchid?",
]


@pytest.fixture(scope="module", params=["lance", "weaviate"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RagService]:
    home = tmp_path_factory.mktemp("rag-home")
    settings = Settings(data_home=home)
    if request.param == "lance":
        store: LanceStore | WeaviateStore = LanceStore.open(home / "rag" / "lancedb", "chunks")
    else:
        server: WeaviateServer = request.getfixturevalue("weaviate_server")
        store = WeaviateStore.connect(server.url, f"T{uuid.uuid4().hex}", server.grpc_port)
    rag = RagService.open(settings, store=store)
    report = rag.index()
    assert report.failures == []
    assert rag.store.count() == report.chunks_written
    yield rag
    if isinstance(store, WeaviateStore):
        store.drop()
    rag.close()


def probe(document: Document) -> str:
    """A question aimed at one document: its title and the start of its longest chunk."""
    longest = max(chunk_document(document, 800, 120), key=lambda c: len(c.text))
    return f"{longest.title}: {longest.text[:200]}"


def test_the_user_by_document_access_matrix(service: RagService) -> None:
    """Every user against every document, every retrieval mode: a document is retrieved
    exactly when the user shares one of its groups, even when the question targets it."""
    documents = {d.doc_id: d for d in load_sources(service.settings).documents}
    assert set(documents) == set(service.store.indexed())
    assert len(service.users) >= 4
    assert len(documents) >= 15
    restricted = [d for d in documents.values() if "all" not in d.groups]
    assert restricted, "the corpus must have documents not everyone may read"
    for user in service.users.values():
        readable = {d.doc_id for d in documents.values() if set(d.groups) & set(user.groups)}
        assert readable
        for doc_id, document in documents.items():
            question = probe(document)
            for mode in SEARCH_MODES:
                targeted = service.retriever.search(
                    question, user.groups, mode, 10, Filters(doc_ids=(doc_id,))
                )
                assert bool(targeted.hits) == (doc_id in readable), (user.name, doc_id, mode)
                free = service.retriever.search(question, user.groups, mode, 10)
                assert {h.chunk.doc_id for h in free.hits} <= readable, (user.name, doc_id)
                if doc_id in readable and mode == "dense":
                    assert free.hits[0].chunk.doc_id == doc_id, (user.name, doc_id, mode)


def test_answers_cite_only_retrieved_permitted_passages(service: RagService) -> None:
    answered = 0
    for user in service.users.values():
        for question in [
            "How do I replay a Kafka topic?",
            "What are the quarterly fraud losses?",
            "How quickly must a chargeback be answered?",
            "Who approves promoting a new champion model?",
        ]:
            answer = service.ask(question, user.name)
            retrieved = {h.chunk.chunk_id for h in answer.passages}
            for citation in answer.citations:
                assert citation.chunk_id in retrieved
                assert set(citation.groups) & set(user.groups)
            numbers = [c.number for c in answer.citations]
            assert numbers == list(range(1, len(numbers) + 1))
            for number in numbers:
                assert f"[{number}]" in answer.text
            if answer.found:
                answered += 1
                assert answer.citations
                assert answer.method == "extractive"
    # everyone reads something on these topics (the public policy, the company update)
    assert answered >= len(service.users) * 2


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_are_not_answered(service: RagService, question: str) -> None:
    for user in service.users.values():
        answer = service.ask(question, user.name)
        assert not answer.found
        assert answer.text == NOT_FOUND
        assert answer.citations == []


def test_unknown_users_and_empty_questions_are_refused(service: RagService) -> None:
    with pytest.raises(UnknownUserError, match="known users"):
        service.ask("What is the fraud policy?", "mallory")
    with pytest.raises(ValueError, match="empty"):
        service.ask("   ", next(iter(service.users)))


def test_langchain_components(service: RagService) -> None:
    user = next(u for u in service.users.values() if "engineering" in u.groups)
    retriever = LakebedRetriever(retriever=service.retriever, groups=user.groups, k=4)
    assert isinstance(retriever, BaseRetriever)
    documents = retriever.invoke("replay a Kafka topic from an earlier offset")
    assert len(documents) == 4
    assert all(set(d.metadata["groups"]) & set(user.groups) for d in documents)
    assert documents[0].metadata["source"].startswith(documents[0].metadata["doc_id"])
    chain = answer_chain(service.answerer, user.groups)
    result = chain.invoke("How do I replay a Kafka topic?")
    assert result["found"]
    assert result["citations"]


class _FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint on loopback that records what it was sent."""

    received: list[dict[str, Any]] = []  # noqa: RUF012
    reply = ""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(
            {"path": self.path, "auth": self.headers["Authorization"], **body}
        )
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": self.reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def llm() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeLLM.received = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_generated_answers_go_to_the_configured_endpoint(service: RagService, llm: str) -> None:
    from pydantic import SecretStr

    rag = service.settings.rag.model_copy(
        update={"llm_base_url": llm, "llm_model": "tiny", "llm_api_key": SecretStr("k3y")}
    )
    answerer = Answerer(service.retriever, rag)
    user = next(u for u in service.users.values() if u.groups == ("all",))
    _FakeLLM.reply = "Replay it by resetting offsets [1], then restart [2] and [9]."
    answer = answerer.ask("How do I replay a Kafka topic?", user.groups)
    [sent] = _FakeLLM.received
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer k3y"
    assert sent["model"] == "tiny"
    prompt = sent["messages"][-1]["content"]
    # only passages the user may read went out, each numbered
    for number, hit in enumerate(answer.passages, start=1):
        assert f"[{number}] " in prompt
        assert set(hit.chunk.groups) & set(user.groups)
    assert answer.method == "generated"
    assert [c.number for c in answer.citations] == [1, 2]  # [9] has no passage: dropped
    assert "[9]" not in answer.text
    _FakeLLM.reply = NOT_FOUND
    assert not answerer.ask("How do I replay a Kafka topic?", user.groups).found


def test_sentences_keep_commands_whole() -> None:
    text = (
        "Stop the consumers first:\n\n```bash\n"
        "systemctl stop 'lakebed-sink@*'\n"
        "kafka-consumer-groups.sh --bootstrap-server k1:9092 \\\n"
        "  --describe --group lakebed-sink\n```\n\n"
        "Offsets can only be reset in an idle group. The output must be empty.\n"
        "- Check the lag before you go on.\n"
        "| HV-1 | card-present EUR 2,500 or more | 30 minutes |\n"
    )
    assert sentences(text) == [
        "Stop the consumers first:",
        "`systemctl stop 'lakebed-sink@*'`",
        "`kafka-consumer-groups.sh --bootstrap-server k1:9092 --describe --group lakebed-sink`",
        "Offsets can only be reset in an idle group.",
        "The output must be empty.",
        "Check the lag before you go on.",
        "HV-1 | card-present EUR 2,500 or more | 30 minutes",
    ]
