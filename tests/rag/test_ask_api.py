"""``POST /ask`` over the shipped corpus on LanceDB: access shapes the answer, bad requests
get a 4xx that says why."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from lakebed.config import Settings
from lakebed.rag.service import RagService
from lakebed.rag.users import load_users
from lakebed.serve.api import create_app

HIGH_VALUE = "Above what amount is a large card payment held for manual review?"


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagService]:
    settings = Settings(data_home=tmp_path_factory.mktemp("ask-home"))
    service = RagService.open(settings)
    service.index(with_catalog=False)
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(rag: RagService) -> TestClient:
    # Without the lifespan: these tests need no SQL engine or scorer.
    return TestClient(create_app(rag.settings, rag=rag))


def ask(client: TestClient, **body: object) -> tuple[int, dict[str, object]]:
    response = client.post("/ask", json=body)
    return response.status_code, response.json()


def without_timing(answer: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in answer.items() if key != "elapsed_ms"}


def cited(body: dict[str, object]) -> set[str]:
    citations = body["citations"]
    assert isinstance(citations, list)
    return {c["document"] for c in citations}


def test_two_users_get_different_citations_where_access_differs(client: TestClient) -> None:
    status, analyst = ask(client, question=HIGH_VALUE, user="alice", passages=True)
    assert status == 200, analyst
    assert analyst["found"] is True
    assert "investigations/fraud-investigation-guide.pdf" in cited(analyst)
    assert "2,500" in str(analyst["answer"])
    status, newcomer = ask(client, question=HIGH_VALUE, user="dave", passages=True)
    assert status == 200
    assert newcomer["found"] is True
    assert "investigations/fraud-investigation-guide.pdf" not in cited(newcomer)
    assert cited(newcomer) <= {
        "policies/fraud-prevention-policy.md",
        "policies/customer-disputes-faq.txt",
        "handbook/glossary.md",
        "handbook/new-joiner-guide.docx",
        "handbook/access-request-procedure.html",
        "handbook/company-update-2025-q4.md",
        "policies/data-retention-and-privacy.html",
    }
    passages = newcomer["passages"]
    assert isinstance(passages, list)
    # nothing the newcomer may not read is retrieved, quoted or hinted at
    assert all(not p["document"].startswith(("investigations/", "executive/")) for p in passages)
    assert "2,500" not in str(without_timing(newcomer))


def test_executive_numbers_stay_with_executives(client: TestClient) -> None:
    question = "How much money did we lose to fraud in the fourth quarter of 2025?"
    _, executive = ask(client, question=question, user="carol")
    _, engineer = ask(client, question=question, user="bob")
    assert "executive/quarterly-fraud-report-2025-q4.pdf" in cited(executive)
    assert not any(doc.startswith("executive/") for doc in cited(engineer))
    # what the answer says, not its timing (an elapsed_ms of 107.88 once matched "7.8")
    assert "7.8" not in str(without_timing(engineer))


@pytest.mark.parametrize(
    ("body", "status", "kind", "says"),
    [
        ({"question": "What is the policy?", "user": "mallory"}, 403, "unknown_user", "unknown"),
        ({"question": "What is the policy?"}, 403, "unknown_user", "user: Field required"),
        ({"question": "", "user": "alice"}, 422, "invalid_request", "question"),
        ({"user": "alice"}, 422, "invalid_request", "question: Field required"),
        ({"question": "x", "user": "alice", "mode": "psychic"}, 422, "invalid_request", "mode"),
        (
            {"question": "x", "user": "alice", "groups": ["executives"]},
            422,
            "invalid_request",
            "groups",
        ),
        ({"question": "x" * 2001, "user": "alice"}, 422, "invalid_request", "question"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    client: TestClient, body: dict[str, object], status: int, kind: str, says: str
) -> None:
    got, answer = ask(client, **body)
    assert got == status
    assert answer["error"] == kind
    assert says in str(answer["message"])
    # an anonymous caller learns no user names
    assert not any(name in str(answer["message"]) for name in ("alice", "carol", "dave"))


def test_metadata_filters_narrow_the_search(client: TestClient) -> None:
    question = "What does the on-call engineer do first?"
    _, body = ask(client, question=question, user="erin", under="oncall/", passages=True)
    passages = body["passages"]
    assert isinstance(passages, list)
    assert passages
    assert all(p["document"].startswith("oncall/") for p in passages)
    only = "runbooks/replay-kafka-topic.md"
    _, body = ask(client, question=question, user="erin", documents=[only], passages=True)
    narrowed = body["passages"]
    assert isinstance(narrowed, list)
    assert {p["document"] for p in narrowed} == {only}
    # a filter never widens access: dave may not read runbooks
    _, body = ask(client, question=question, user="dave", documents=[only], passages=True)
    assert body["passages"] == []
    assert body["found"] is False


def test_with_tokens_the_token_decides_who_asks(rag: RagService, tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    digest = hashlib.sha256(b"s3cret-carol").hexdigest()
    users.write_text(
        f'[users.carol]\ngroups = ["all", "executives"]\ntoken_sha256 = "{digest}"\n'
        '[users.dave]\ngroups = ["all"]\n'
    )
    service = RagService(rag.settings, rag.store, rag.model, rag.cache, load_users(users))
    client = TestClient(create_app(rag.settings, rag=service))
    question = {"question": "How much did we lose to fraud in Q4 2025?"}
    no_token = client.post("/ask", json={**question, "user": "carol"})
    assert no_token.status_code == 401
    assert no_token.json()["error"] == "not_authenticated"
    wrong = client.post("/ask", json=question, headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    bearer = {"Authorization": "Bearer s3cret-carol"}
    claimed = client.post("/ask", json={**question, "user": "dave"}, headers=bearer)
    assert claimed.status_code == 401
    assert "does not belong" in claimed.json()["message"]
    ok = client.post("/ask", json=question, headers=bearer)
    assert ok.status_code == 200, ok.json()
    assert "executive/quarterly-fraud-report-2025-q4.pdf" in cited(ok.json())


def test_a_running_api_serves_a_reindex_at_once(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "access.toml").write_text('default = ["all"]\n')
    (corpus / "pager.md").write_text("# Pager\n\n## Rotation\n\nThe pager rotates on Tuesdays.\n")
    settings = Settings(data_home=tmp_path / "home")
    settings.rag.corpus = corpus
    serving = RagService.open(settings)  # opened before anything is indexed, like the API
    client = TestClient(create_app(settings, rag=serving))
    question = {"question": "When does the pager rotate?", "user": "dave"}
    assert client.post("/ask", json=question).status_code == 503
    indexer = RagService.open(settings)  # another connection, as `lakebed index` would be
    indexer.index(with_catalog=False)
    first = client.post("/ask", json=question).json()
    assert cited(first) == {"pager.md"}
    (corpus / "access.toml").write_text('default = ["engineering"]\n')  # narrowed
    indexer.index(with_catalog=False)
    after = client.post("/ask", json={**question, "passages": True}).json()
    assert after["found"] is False
    assert after["passages"] == []
    indexer.close()
    serving.close()


def test_off_topic_question_says_so(client: TestClient) -> None:
    status, body = ask(client, question="What is a good sourdough starter?", user="erin")
    assert status == 200
    assert body["found"] is False
    assert body["citations"] == []


def test_asking_before_indexing_is_a_503(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path)
    client = TestClient(create_app(settings))
    status, body = ask(client, question="What is the fraud policy?", user="alice")
    assert status == 503
    assert body["error"] == "no_index"
    assert "lakebed index" in str(body["message"])


def test_a_cited_document_opens_for_a_reader_who_may_read_it(client: TestClient) -> None:
    response = client.get("/documents/runbooks/replay-kafka-topic.md", params={"user": "bob"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["document"] == "runbooks/replay-kafka-topic.md"
    assert "engineering" in body["groups"]
    # Every citation's anchor is one of the sections the reader can open.
    answer = client.post("/ask", json={"question": "How do I replay a Kafka topic?", "user": "bob"})
    assert answer.status_code == 200
    anchors = {section["anchor"] for section in body["sections"]}
    links = [c["link"] for c in answer.json()["citations"] if c["document"] == body["document"]]
    assert links
    for link in links:
        assert "#" + link.partition("#")[2] in anchors


@pytest.mark.parametrize(
    "doc_id",
    [
        "runbooks/replay-kafka-topic.md",  # exists, but not for dave
        "runbooks/no-such-runbook.md",  # does not exist
        "../users.toml",  # outside the corpus
        "access.toml",  # the rules themselves
        "%2Fetc%2Fpasswd",
    ],
)
def test_a_document_dave_may_not_read_reads_as_missing(client: TestClient, doc_id: str) -> None:
    response = client.get(f"/documents/{doc_id}", params={"user": "dave"})
    missing = client.get("/documents/no/such/file.md", params={"user": "dave"})
    assert response.json()["message"].replace(unquote(doc_id), "X") in (
        missing.json()["message"].replace("no/such/file.md", "X"),
        "not found",  # a path the client normalised out of the API's routes
    )
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error"] == "not_found"
    assert "engineering" not in response.text


def test_documents_need_a_known_user(client: TestClient) -> None:
    assert client.get("/documents/handbook/glossary.md").status_code == 403
    assert (
        client.get("/documents/handbook/glossary.md", params={"user": "mallory"}).status_code == 403
    )
    assert client.get("/documents/handbook/glossary.md", params={"user": "dave"}).status_code == 200


def test_users_are_listed_until_tokens_are_used(rag: RagService, tmp_path: Path) -> None:
    listed = TestClient(create_app(rag.settings, rag=rag)).get("/users").json()
    assert listed["tokens"] is False
    assert {u["name"] for u in listed["users"]} == {"alice", "bob", "carol", "dave", "erin"}
    users = tmp_path / "users.toml"
    digest = hashlib.sha256(b"s3cret").hexdigest()
    users.write_text(f'[users.carol]\ngroups = ["all"]\ntoken_sha256 = "{digest}"\n')
    settings = rag.settings.model_copy(
        update={"rag": rag.settings.rag.model_copy(update={"users_file": users})}
    )
    hidden = TestClient(create_app(settings, rag=rag)).get("/users").json()
    assert hidden == {"tokens": True, "users": []}
