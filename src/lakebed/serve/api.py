"""The HTTP API: read-only SQL over silver and gold (``POST /sql``), the table list, fraud
scoring with the champion model (``POST /score``), cited answers over the internal
documents (``POST /ask``) and the documents they cite (``GET /documents/{id}``), the
platform's state for the dashboard (``lakebed.serve.status``), health.

Every error is JSON ``{"error": <kind>, "message": <text>}`` and never a stack trace:

======================  ======  ==========================================================
kind                    status  when
======================  ======  ==========================================================
``invalid_request``     422     the body does not have the endpoint's shape (the message
                                names each field at fault, e.g. ``amount.value``)
``refused``             400     not one read-only SELECT over silver/gold (guard's reason)
``query_failed``        400     the engine rejected the query (unknown column, bad cast...)
``timeout``             504     the query ran past ``serve.timeout_seconds``; 504, not 408,
                                because clients and proxies retry 408 automatically and a
                                slow query would only run again
``nothing_published``   503     no silver or gold table exists yet: run the pipeline
``engine_unavailable``  503     the engine could not be opened (catalog unreachable...) or
                                its server does not answer (Trino down or restarting)
``no_model``            503     no champion model to score with, or it no longer fits the
                                declared features: train and promote one
``not_authenticated``   401     ``POST /ask`` without a valid ``Authorization: Bearer`` token,
                                once the users file gives users tokens
``unknown_user``        403     ``POST /ask`` naming a user the users file does not list
                                (tokens not configured); the message names no one
``no_index``            503     ``POST /ask`` before ``lakebed index`` has run
``store_unavailable``   503     the vector store could not be reached (Weaviate down...)
``generation_failed``   502     the configured LLM endpoint failed
``not_found``           404     ``GET /documents/...``: no such document or not one the user
                                may read (the same answer); ``GET /models/V/evaluation``:
                                no such version or no stored evaluation
``internal``            500     a bug; the details go to the server log, not the client
======================  ======  ==========================================================

The engine and the scorer open at startup, or on first use when the app runs without its lifespan
(tests), so ``create_app`` itself stays cheap and never touches the catalog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakebed.config import Settings
from lakebed.fraud.dataset import NoTrainingDataError
from lakebed.fraud.registry import NoChampionError
from lakebed.fraud.scoring import Decision, FeatureSetChangedError, RawTransaction, ScorerSlot
from lakebed.rag.answer import GenerationError
from lakebed.rag.index import DocumentNotFoundError
from lakebed.rag.store import Filters, SearchMode, StoreError
from lakebed.rag.users import NotAuthenticatedError, UnknownUserError, authenticate
from lakebed.serve.engine import (
    EngineUnreachable,
    NothingPublished,
    QueryFailed,
    QueryTimeout,
    SqlEngine,
    TableInfo,
    open_engine,
)
from lakebed.serve.guard import MAX_SQL_CHARS, QueryRefused
from lakebed.serve.status import NotFoundError, status_router

if TYPE_CHECKING:
    from lakebed.rag.service import RagService

log = logging.getLogger(__name__)
NOTHING_PUBLISHED = "no silver or gold table is published yet; run the pipeline first"


class SqlRequest(BaseModel):
    model_config = {"extra": "forbid"}

    sql: str = Field(max_length=MAX_SQL_CHARS, description="one SELECT over silver/gold")
    max_rows: int | None = Field(
        None, gt=0, description="rows returned at most; default and ceiling: serve.max_rows"
    )


class SqlResponse(BaseModel):
    columns: list[str]
    types: list[str] = Field(description="DuckDB type of each column")
    rows: list[list[Any]] = Field(description="dates ISO strings, decimals numbers")
    row_count: int
    truncated: bool = Field(description="more rows existed than were returned")
    elapsed_ms: float


class ColumnOut(BaseModel):
    name: str
    type: str


class TableOut(BaseModel):
    name: str = Field(description="qualified name to use in SQL, e.g. gold.fct_transactions")
    snapshot_id: int | None = Field(description="the Iceberg snapshot being served")
    columns: list[ColumnOut]

    @classmethod
    def of(cls, table: TableInfo) -> TableOut:
        columns = [ColumnOut(name=c.name, type=c.type) for c in table.columns]
        return cls(name=table.qualified_name, snapshot_id=table.snapshot_id, columns=columns)


class TablesResponse(BaseModel):
    tables: list[TableOut]
    message: str | None = Field(None, description="set when nothing is published yet")


class ErrorResponse(BaseModel):
    error: str
    message: str


class ReasonOut(BaseModel):
    feature: str
    value: float = Field(description="the feature's value for this transaction")
    typical: float = Field(description="its typical value (training median)")
    contribution: float = Field(description="how much lower the score is at the typical value")


class ScoreResponse(BaseModel):
    transaction_id: str
    probability: float = Field(description="the champion's fraud score, 0..1")
    decision: Decision = Field(description="by fraud.review_threshold / fraud.block_threshold")
    reasons: list[ReasonOut] = Field(description="features raising the score most, largest first")
    model: str
    version: str = Field(description="the registry version that scored")
    features: dict[str, float] = Field(description="the feature values the model saw")
    elapsed_ms: float


class AskRequest(BaseModel):
    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1, max_length=2000, description="the question, in words")
    user: str | None = Field(
        None,
        min_length=1,
        description="who asks; their access groups apply. Required without API tokens; "
        "with tokens the token decides and this, if given, must agree",
    )
    mode: SearchMode = Field("hybrid", description="retrieval: hybrid, dense or bm25")
    under: str | None = Field(
        None, min_length=1, description="only documents whose path starts with this"
    )
    documents: list[str] | None = Field(None, description="only these document ids")
    passages: bool = Field(False, description="also return the retrieved passages")


class CitationOut(BaseModel):
    number: int
    document: str
    title: str
    section: str
    link: str


class PassageOut(BaseModel):
    rank: int
    document: str
    section: str
    link: str
    text: str


class AskResponse(BaseModel):
    question: str
    answer: str
    found: bool = Field(description="false: nothing relevant the user may read was found")
    method: Literal["extractive", "generated", "none"]
    citations: list[CitationOut]
    passages: list[PassageOut] | None = None
    elapsed_ms: float


class SectionOut(BaseModel):
    heading: str
    anchor: str = Field(description="the citation link's fragment, e.g. #escalation")
    text: str


class DocumentOut(BaseModel):
    document: str
    title: str
    format: str
    groups: list[str]
    sections: list[SectionOut]


class UserOut(BaseModel):
    name: str
    groups: list[str]
    description: str


class UsersOut(BaseModel):
    tokens: bool = Field(description="true: users are known by API tokens and not listed")
    users: list[UserOut]


class NoIndexError(RuntimeError):
    """Nothing is indexed yet."""


class _RagSlot:
    """The RAG service, opened on the first question (loading the model takes seconds)."""

    def __init__(self, settings: Settings, service: RagService | None) -> None:
        self.settings = settings
        self.service = service
        self.owned = service is None
        self._lock = threading.Lock()

    def get(self) -> RagService:
        with self._lock:
            if self.service is None:
                from lakebed.rag.service import RagService

                self.service = RagService.open(self.settings)
            if self.service.store.count() == 0:
                raise NoIndexError("no document is indexed yet; run `lakebed index` first")
            return self.service

    def close(self) -> None:
        with self._lock:
            if self.owned and self.service is not None:
                self.service.close()
                self.service = None


class EngineUnavailable(QueryFailed):
    """The SQL engine could not be opened; the message says why."""


class _EngineSlot:
    """Holds the engine, opening it once on first use (thread-safe)."""

    def __init__(self, settings: Settings, engine: SqlEngine | None) -> None:
        self.settings = settings
        self.engine = engine
        self.owned = engine is None  # an engine passed in is closed by whoever made it
        self._lock = threading.Lock()

    def get(self) -> SqlEngine:
        with self._lock:
            if self.engine is None:
                try:
                    self.engine = open_engine(self.settings)
                except Exception as error:
                    log.exception("could not open the SQL engine")
                    reason = (str(error).strip() or type(error).__name__).splitlines()[0]
                    raise EngineUnavailable(
                        f"the SQL engine could not be opened: {reason}"
                    ) from None
            return self.engine

    def close(self) -> None:
        with self._lock:
            if self.owned and self.engine is not None:
                self.engine.close()
                self.engine = None


def _scorer_slot(request: Request) -> ScorerSlot:
    slot: ScorerSlot = request.app.state.scorer_slot
    return slot


def _engine(request: Request) -> SqlEngine:
    slot: _EngineSlot = request.app.state.engine_slot
    return slot.get()


# Module level, not inside create_app: FastAPI resolves the (postponed) annotations of the
# endpoints against module globals.
Engine = Annotated[SqlEngine, Depends(_engine)]
Scorers = Annotated[ScorerSlot, Depends(_scorer_slot)]


def create_app(
    settings: Settings, engine: SqlEngine | None = None, rag: RagService | None = None
) -> FastAPI:
    """The API over ``engine`` and ``rag``, or over the profile's, opened from ``settings``."""
    slot = _EngineSlot(settings, engine)
    scorers = ScorerSlot(settings)
    rag_slot = _RagSlot(settings, rag)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Fail early and load the tables before the first request; a failure is logged
        # and requests answer 503 with the reason.
        with suppress(EngineUnavailable):
            slot.get()
        try:
            scorers.get()
        except (NoChampionError, NoTrainingDataError, FeatureSetChangedError) as error:
            log.warning("scoring is not ready: %s", error)
        yield
        slot.close()
        rag_slot.close()

    app = FastAPI(
        title="Lakebed API",
        description="Read-only SQL over the silver and gold tables of the lakehouse, and "
        "fraud scoring of raw transactions with the champion model, and answers with "
        "citations from the internal documents the asker may read.",
        lifespan=lifespan,
        responses={400: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    app.state.engine_slot = slot
    app.state.scorer_slot = scorers
    _add_error_handlers(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness only: answers without touching the engine or the catalog."""
        return {"status": "ok", "profile": settings.profile}

    @app.get("/tables", response_model=TablesResponse)
    def tables(engine: Engine) -> TablesResponse:
        served = [TableOut.of(table) for table in engine.tables()]
        return TablesResponse(tables=served, message=None if served else NOTHING_PUBLISHED)

    @app.post(
        "/sql",
        response_model=SqlResponse,
        responses={503: {"model": ErrorResponse}, 504: {"model": ErrorResponse}},
    )
    def sql(body: SqlRequest, engine: Engine) -> SqlResponse | JSONResponse:
        ceiling = settings.serve.max_rows
        if body.max_rows is not None and body.max_rows > ceiling:
            message = f"max_rows: must be at most {ceiling} (got {body.max_rows})"
            return _error(422, "invalid_request", message)
        result = engine.query(body.sql, max_rows=body.max_rows or ceiling)
        return SqlResponse(**result.to_dict())

    @app.post("/score", response_model=ScoreResponse, responses={503: {"model": ErrorResponse}})
    def score(body: RawTransaction, slot: Scorers) -> ScoreResponse:
        started = time.perf_counter()
        [scored] = slot.get().score([body])
        return ScoreResponse(
            transaction_id=scored.transaction_id,
            probability=scored.probability,
            decision=scored.decision,
            reasons=[ReasonOut(**vars(reason)) for reason in scored.reasons],
            model=scored.model,
            version=scored.version,
            features=scored.features,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    @app.post(
        "/ask",
        response_model=AskResponse,
        response_model_exclude_none=True,
        responses={
            401: {"model": ErrorResponse},
            403: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    def ask(body: AskRequest, authorization: Annotated[str | None, Header()] = None) -> AskResponse:
        started = time.perf_counter()
        service = rag_slot.get()
        user = authenticate(service.users, _bearer(authorization), body.user)
        filters = Filters(
            doc_ids=tuple(body.documents) if body.documents is not None else None,
            path_prefix=body.under,
        )
        answer = service.ask(body.question, user, body.mode, filters)
        result = answer.as_dict(with_passages=body.passages)
        return AskResponse(
            question=answer.question,
            answer=answer.text,
            found=answer.found,
            method=answer.method,
            citations=[CitationOut(**c) for c in result["citations"]],
            passages=[PassageOut(**p) for p in result["passages"]] if body.passages else None,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    @app.get(
        "/documents/{doc_id:path}",
        response_model=DocumentOut,
        responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    )
    def document(
        doc_id: str,
        user: str | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> DocumentOut:
        """A cited document with its sections, for a user who may read it."""
        service = rag_slot.get()
        reader = authenticate(service.users, _bearer(authorization), user)
        found = service.document(doc_id, reader)
        return DocumentOut(
            document=found.doc_id,
            title=found.title,
            format=found.format,
            groups=list(found.groups),
            sections=[
                SectionOut(heading=s.heading, anchor=s.anchor, text=s.text) for s in found.sections
            ],
        )

    @app.get("/users", response_model=UsersOut)
    def users() -> UsersOut:
        """Who may ask, for a user picker; nobody is listed once API tokens are in use."""
        from lakebed.rag.users import load_users

        known = load_users(settings.rag.users_file)
        if any(u.token_sha256 for u in known.values()):
            return UsersOut(tokens=True, users=[])
        listed = [UserOut(name=u.name, groups=list(u.groups), description=u.description)
                  for u in known.values()]  # fmt: skip
        return UsersOut(tokens=False, users=listed)

    app.include_router(status_router(settings))
    return app


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def run_server(settings: Settings) -> None:
    """Serve the API on ``serve.host``:``serve.port`` until interrupted (``lakebed serve``)."""
    uvicorn.run(create_app(settings), host=settings.serve.host, port=settings.serve.port)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "message": message})


def _handler(status: int, kind: str) -> Callable[[Request, Exception], JSONResponse]:
    def handle(_: Request, error: Exception) -> JSONResponse:
        return _error(status, kind, str(error))

    return handle


def _add_error_handlers(app: FastAPI) -> None:
    # Starlette picks the handler of the most specific class, so order does not matter.
    app.add_exception_handler(QueryRefused, _handler(400, "refused"))
    app.add_exception_handler(QueryFailed, _handler(400, "query_failed"))
    app.add_exception_handler(QueryTimeout, _handler(504, "timeout"))
    app.add_exception_handler(NothingPublished, _handler(503, "nothing_published"))
    app.add_exception_handler(EngineUnavailable, _handler(503, "engine_unavailable"))
    app.add_exception_handler(EngineUnreachable, _handler(503, "engine_unavailable"))
    app.add_exception_handler(NoChampionError, _handler(503, "no_model"))
    app.add_exception_handler(FeatureSetChangedError, _handler(503, "no_model"))
    app.add_exception_handler(NoTrainingDataError, _handler(503, "no_model"))
    app.add_exception_handler(UnknownUserError, _handler(403, "unknown_user"))
    app.add_exception_handler(NotAuthenticatedError, _handler(401, "not_authenticated"))
    app.add_exception_handler(NoIndexError, _handler(503, "no_index"))
    app.add_exception_handler(StoreError, _handler(503, "store_unavailable"))
    app.add_exception_handler(GenerationError, _handler(502, "generation_failed"))
    app.add_exception_handler(DocumentNotFoundError, _handler(404, "not_found"))
    app.add_exception_handler(NotFoundError, _handler(404, "not_found"))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal)


def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    """One line per problem, naming the field (``sql: Field required``)."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    lines = []
    for problem in problems:
        where = ".".join(str(part) for part in problem["loc"] if part != "body") or "body"
        lines.append(f"{where}: {problem['msg']}")
    return _error(422, "invalid_request", "; ".join(lines) or "invalid request body")


def _http_error(_: Request, error: Exception) -> JSONResponse:
    """Routing's own errors (no such path, wrong method) in the same shape as ours."""
    status = error.status_code if isinstance(error, StarletteHTTPException) else 500
    kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = getattr(error, "detail", None) or "error"
    return _error(status, kind, str(detail).lower())


def _internal(_: Request, error: Exception) -> JSONResponse:
    """The client gets the kind only; Starlette re-raises, so the server logs the traceback."""
    return _error(500, "internal", f"internal error ({type(error).__name__}); see the server log")
