"""A real Weaviate for the RAG tests, started once per session from deploy/weaviate.

No mock: what matters is what the server does with our filters, scores and deletes.
A machine without the server builds it on the first run (minutes, Go 1.26+); a server
that cannot start fails the tests that need it, with the script's explanation, rather
than skipping them, so a broken setup never passes for a green run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from lakebed.rag.weaviate_store import WeaviateStore
from lakebed.services import ServiceError, WeaviateServer, free_ports

# Away from the cluster profile's defaults (18080/18081), so a developer's own server
# keeps running; gRPC is the next port and the cluster ports follow (18582-18585).
WEAVIATE_HTTP_PORT = 18580


def free_http_port(start: int) -> int:
    """From ``start`` up, an http port whose gRPC port (+1) and cluster ports (+2..+5)
    are free too: a second test run on the same machine must not collide."""
    return free_ports(start, 6)


@pytest.fixture(scope="session")
def weaviate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeaviateServer]:
    http = free_http_port(WEAVIATE_HTTP_PORT)
    server = WeaviateServer(tmp_path_factory.mktemp("weaviate"), http, http + 1)
    try:
        server.up()
    except ServiceError as exc:
        server.down()
        pytest.fail(f"Weaviate did not start:\n{exc}", pytrace=False)
    yield server
    server.down()


@pytest.fixture
def weaviate_store(weaviate_server: WeaviateServer) -> Iterator[WeaviateStore]:
    """A store on a collection of its own, removed after the test."""
    store = WeaviateStore.connect(
        weaviate_server.url, f"T{uuid.uuid4().hex}", weaviate_server.grpc_port
    )
    try:
        yield store
    finally:
        store.drop()
        store.close()
