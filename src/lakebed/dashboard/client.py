"""The dashboard's only way to the platform: the HTTP API, with every failure turned into
one readable sentence (``ApiError``) that a page shows instead of a traceback.

The dashboard holds no engine, catalog or model of its own, so what it shows is what any
API client would get, and a page never blocks on a system that is down: requests time out.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

API_URL_VARIABLE = "LAKEBED_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    """What went wrong, in words for the page; ``kind`` is the API's error kind."""

    def __init__(self, message: str, kind: str = "unavailable", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


class ApiClient:
    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        self.base_url = (base_url or os.environ.get(API_URL_VARIABLE) or DEFAULT_API_URL).rstrip(
            "/"
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT_S, headers=headers)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"the Lakebed API at {self.base_url} did not answer within {TIMEOUT_S:.0f} s"
            ) from None
        except httpx.TransportError:
            raise ApiError(
                f"the Lakebed API at {self.base_url} is not answering: start it with "
                "`lakebed serve` (or run `lakebed dashboard`, which starts it)"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            if isinstance(body, dict) and "message" in body:
                raise ApiError(str(body["message"]), str(body.get("error")), response.status_code)
            raise ApiError(
                f"the API answered {response.status_code} to {method} {path}",
                status=response.status_code,
            )
        return body

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def lakehouse(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/lakehouse/status")
        return result

    def sql(self, statement: str, max_rows: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"sql": statement}
        if max_rows is not None:
            body["max_rows"] = max_rows
        result: dict[str, Any] = self._call("POST", "/sql", json=body)
        return result

    def models(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/models")
        return result

    def evaluation(self, version: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/models/{quote(version)}/evaluation")
        return result

    def alerts(self, after: int = 0, limit: int = 50) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/stream/alerts", params={"after": after, "limit": limit}
        )
        return result

    def activity(self, minutes: float, bucket_seconds: float = 10) -> dict[str, Any]:
        params = {"minutes": minutes, "bucket_seconds": bucket_seconds}
        result: dict[str, Any] = self._call("GET", "/stream/activity", params=params)
        return result

    def users(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/users")
        return result

    def ask(
        self, question: str, user: str | None, mode: str = "hybrid", passages: bool = True
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question, "mode": mode, "passages": passages}
        if user:
            body["user"] = user
        result: dict[str, Any] = self._call("POST", "/ask", json=body)
        return result

    def document(self, doc_id: str, user: str | None) -> dict[str, Any]:
        params = {"user": user} if user else {}
        result: dict[str, Any] = self._call(
            "GET", f"/documents/{quote(doc_id, safe='/')}", params=params
        )
        return result

    def close(self) -> None:
        self._http.close()
