"""``POST /score``: one raw transaction in, a probability, a decision and reasons out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakebed.config import FraudSettings, Settings
from lakebed.fraud.scoring import decide
from lakebed.serve.api import create_app
from tests.conftest import Trained


def raw_transactions(home: Path, day: str, count: int) -> list[dict[str, Any]]:
    """Clean transaction events of one delivery day, as the feed has them."""
    found = []
    for path in sorted((home / "landing" / "transactions").glob(f"*{day}*")):
        for line in path.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("amount"), dict):
                found.append(event)
            if len(found) == count:
                return found
    raise AssertionError(f"no landing file for {day} under {home}")


@pytest.fixture(scope="module")
def client(trained: Trained) -> Iterator[TestClient]:
    with TestClient(create_app(trained.settings)) as client:
        yield client


def test_a_transaction_gets_a_score_a_decision_and_reasons(
    client: TestClient, trained: Trained
) -> None:
    [event] = raw_transactions(trained.home, "2018-08-10", 1)
    response = client.post("/score", json=event)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transaction_id"] == event["transaction_id"]
    assert 0.0 <= body["probability"] <= 1.0
    assert body["decision"] == decide(body["probability"], trained.settings.fraud)
    assert body["version"] == trained.champion
    assert set(body["features"]) >= {"amount", "terminal_risk_7d", "customer_transactions_1d"}
    assert body["features"]["amount"] == event["amount"]["value"]
    for reason in body["reasons"]:
        assert reason["contribution"] > 0
        assert reason["feature"] in body["features"]


def test_scores_rank_fraud_above_genuine(client: TestClient, trained: Trained) -> None:
    """Frauds of the feed (from the chargebacks) score higher than the rest, on average."""
    events = raw_transactions(trained.home, "2018-08-12", 400)
    chargebacks = set()
    for path in (trained.home / "landing" / "chargebacks").glob("*"):
        for line in path.read_bytes().splitlines():
            try:
                chargebacks.add(json.loads(line)["transaction_id"])
            except (ValueError, KeyError, TypeError):
                continue
    scores = {e["transaction_id"]: client.post("/score", json=e).json() for e in events}
    fraud = [s["probability"] for t, s in scores.items() if t in chargebacks]
    genuine = [s["probability"] for t, s in scores.items() if t not in chargebacks]
    assert fraud, "the sample holds some fraud"
    assert sum(fraud) / len(fraud) > 5 * sum(genuine) / len(genuine)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["amount"].update(value="12.50"), "amount.value"),
        (lambda e: e["amount"].update(value=-3), "amount.value"),
        (lambda e: e["amount"].update(currency="XXQ"), "amount.currency"),
        (lambda e: e.pop("card"), "card"),
        (lambda e: e["card"].update(customer_id="17"), "card.customer_id"),
        (lambda e: e["terminal"].pop("terminal_id"), "terminal.terminal_id"),
        (lambda e: e.update(event_time="2018-08-10T10:00:00"), "event_time"),
        (lambda e: e.update(event_time="yesterday"), "event_time"),
    ],
)
def test_invalid_input_gets_a_422_naming_the_field(
    client: TestClient, trained: Trained, change: Any, field: str
) -> None:
    [event] = raw_transactions(trained.home, "2018-08-10", 1)
    change(event)
    response = client.post("/score", json=event)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["message"].startswith(f"{field}:"), body["message"]


def test_no_champion_is_a_503_that_says_what_to_do(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_home=tmp_path))) as client:
        response = client.post(
            "/score",
            json={
                "transaction_id": "tx_1",
                "event_time": "2018-08-10T10:00:00+02:00",
                "card": {"card_id": "card_1", "customer_id": 1},
                "terminal": {"terminal_id": 1},
                "amount": {"value": 10.0, "currency": "EUR"},
            },
        )
    assert response.status_code == 503
    assert response.json()["error"] == "no_model"
    assert "lakebed train" in response.json()["message"]


def test_thresholds_decide() -> None:
    settings = FraudSettings(review_threshold=0.2, block_threshold=0.6)
    assert [decide(p, settings) for p in (0.1, 0.2, 0.59, 0.6, 0.99)] == [
        "approve",
        "review",
        "review",
        "block",
        "block",
    ]
    with pytest.raises(ValueError, match="below"):
        FraudSettings(review_threshold=0.7, block_threshold=0.6)
