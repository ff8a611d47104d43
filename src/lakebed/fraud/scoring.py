"""Scoring one raw transaction with the champion: probability, decision, reasons.

The input is the raw feed's shape (what the payment switch sends, as in the landing
files), validated field by field so a bad request names the field at fault. Its window
features come from ``FeatureHistory`` as of the transaction's own event time, its instant
features from the transaction alone, in the order the model was trained on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from lakebed.config import FraudSettings, Settings
from lakebed.fraud.features import FEATURE_NAMES, FEATURE_SET_VERSION
from lakebed.fraud.history import FeatureHistory
from lakebed.fraud.models import FraudModel, Matrix, Reason
from lakebed.world.spec import ISO_4217

if TYPE_CHECKING:
    from lakebed.fraud.registry import Registry

Decision = Literal["approve", "review", "block"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


# Ids are stored as 64-bit integers (NumPy, Iceberg, Redis keys): a larger one is a bad
# message, not a crash of whatever stores it.
MAX_ID = 2**63 - 1


class Card(_Part):
    card_id: str = Field(min_length=1)
    customer_id: int = Field(ge=0, le=MAX_ID)


class Location(_Part):
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)


class Terminal(_Part):
    terminal_id: int = Field(ge=0, le=MAX_ID)
    mcc: str | None = None
    location: Location | None = None


class Money(_Part):
    value: float = Field(
        gt=0, allow_inf_nan=False, description="in the currency's units, e.g. 12.50"
    )
    currency: str

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if value not in ISO_4217:
            raise ValueError(f"unknown currency {value!r}: use an ISO 4217 code such as EUR")
        return value


class RawTransaction(_Part):
    """A transaction event as the raw feed carries it (schema v1 or v2)."""

    schema_version: int = Field(1, ge=1, le=2)
    transaction_id: str = Field(
        min_length=1,
        pattern=r"^[^\x00-\x1f]+$",
        description="the payment switch's id (no control characters)",
    )
    event_time: AwareDatetime = Field(description="ISO 8601 with its UTC offset")
    card: Card
    terminal: Terminal
    amount: Money
    channel: str | None = None

    @field_validator("event_time", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        # Strict mode takes no strings for datetimes; JSON has nothing else.
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError as error:
                raise ValueError(f"not an ISO 8601 time: {value!r}") from error
        return value


@dataclass(frozen=True)
class Scored:
    transaction_id: str
    probability: float
    decision: Decision
    reasons: list[Reason]
    model: str
    version: str
    features: dict[str, float]


class FeatureSetChangedError(RuntimeError):
    """The champion was trained on other features than the code declares now."""


# By level: how many thresholds a score reaches (block_threshold >= review_threshold).
_DECISIONS: tuple[Decision, ...] = ("approve", "review", "block")


def decide(probability: float, settings: FraudSettings) -> Decision:
    return _DECISIONS[
        (probability >= settings.review_threshold) + (probability >= settings.block_threshold)
    ]


def decide_all(probabilities: npt.NDArray[np.float64], settings: FraudSettings) -> list[Decision]:
    """``decide`` for a batch, without a Python call per row (the stream engine's path)."""
    levels = (probabilities >= settings.review_threshold).astype(np.intp) + (
        probabilities >= settings.block_threshold
    )
    return [_DECISIONS[level] for level in levels.tolist()]


class Scorer:
    """The champion model with the history its features need."""

    def __init__(
        self, model: FraudModel, version: str, history: FeatureHistory, settings: FraudSettings
    ) -> None:
        if tuple(model.feature_names) != FEATURE_NAMES:
            raise FeatureSetChangedError(
                f"the champion (version {version}, feature set {model.feature_set_version}) "
                f"was trained on other features than feature set {FEATURE_SET_VERSION}: "
                "train and promote a new version"
            )
        self.model = model
        self.version = version
        self.history = history
        self.settings = settings

    @classmethod
    def load(cls, settings: Settings) -> Scorer:
        """The registry's champion and the gold history (raises ``NoChampionError``)."""
        from lakebed.fraud.registry import NoChampionError, Registry
        from lakebed.lake.catalog import open_catalog

        if not Registry.exists(settings):
            raise NoChampionError("no model is trained yet: run `lakebed train`, then promote one")
        registry = Registry(settings)
        champion = registry.champion()
        model = registry.load(champion)
        history = FeatureHistory.from_catalog(open_catalog(settings))
        return cls(model, champion.version, history, settings.fraud)

    def features(self, transactions: list[RawTransaction]) -> Matrix:
        """The feature matrix of ``transactions`` as of each one's own event time."""
        return self.history.matrix(
            [t.transaction_id for t in transactions],
            np.array([_epoch_seconds(t.event_time) for t in transactions], dtype=np.int64),
            np.array([t.card.customer_id for t in transactions], dtype=np.int64),
            np.array([t.terminal.terminal_id for t in transactions], dtype=np.int64),
            np.array([t.amount.value for t in transactions], dtype=np.float64),
        )

    def score(self, transactions: list[RawTransaction]) -> list[Scored]:
        """Score a batch in one vectorised pass (one transaction is a batch of one)."""
        if not transactions:
            return []
        x = self.features(transactions)
        probabilities, reasons = self.model.explain(x, self.settings.top_reasons)
        return [
            Scored(
                transaction_id=t.transaction_id,
                probability=float(p),
                decision=decide(float(p), self.settings),
                reasons=r,
                model=self.model.name,
                version=self.version,
                features=dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
            )
            for t, p, r, row in zip(transactions, probabilities, reasons, x, strict=True)
        ]


def _epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, on the world's (UTC) clock."""
    return int(moment.timestamp()) if moment.tzinfo else int(moment.replace(tzinfo=UTC).timestamp())


class ScorerSlot:
    """Loads the scorer on first use and again when the champion alias moves (checked at
    most every ``recheck_seconds``), so a promotion reaches a running API."""

    def __init__(self, settings: Settings, recheck_seconds: float = 10.0) -> None:
        self.settings = settings
        self.recheck_seconds = recheck_seconds
        self._scorer: Scorer | None = None
        self._registry: Registry | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> Scorer:
        with self._lock:
            now = time.monotonic()
            if self._scorer is None or now - self._checked >= self.recheck_seconds:
                self._checked = now
                self._scorer = self._refresh(self._scorer)
            return self._scorer

    def _refresh(self, current: Scorer | None) -> Scorer:
        from lakebed.fraud.registry import Registry

        if current is None:
            return Scorer.load(self.settings)
        if self._registry is None:
            self._registry = Registry(self.settings)
        registry = self._registry
        champion = registry.champion()
        if champion.version == current.version:
            return current
        return Scorer(registry.load(champion), champion.version, current.history, current.settings)
