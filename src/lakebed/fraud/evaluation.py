"""What a trained model's evaluation looks like as data: its ROC and precision-recall
curves and its feature importance, stored with each registered version so the dashboard
can draw them for any version (the PNGs of ``lakebed train`` are for people, not pages).

Curves are thinned to at most ``CURVE_POINTS`` points: the test week has ~60,000 distinct
scores, a chart needs a few hundred. Importance is model-agnostic and the same quantity
that the alerts' reasons show: the mean drop in score when a feature is set to its typical
value, over a sample of test rows that holds every fraud (the rows the reasons matter for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lakebed.fraud.models import FraudModel

CURVE_POINTS = 300
IMPORTANCE_ROWS = 2_000
ARTIFACT = "evaluation.json"


@dataclass(frozen=True)
class Curve:
    x: list[float]
    y: list[float]


@dataclass(frozen=True)
class Evaluation:
    roc: Curve  # false positive rate -> true positive rate
    precision_recall: Curve  # recall -> precision
    importance: dict[str, float]  # feature -> mean score drop, largest first
    fraud_rate: float  # the precision of a random ranking

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            roc=Curve(**data["roc"]),
            precision_recall=Curve(**data["precision_recall"]),
            importance={str(k): float(v) for k, v in data["importance"].items()},
            fraud_rate=float(data["fraud_rate"]),
        )


def evaluate(
    model: FraudModel,
    x_test: npt.NDArray[np.float64],
    y_test: npt.NDArray[np.int8],
    scores: npt.NDArray[np.float64],
    seed: int = 0,
) -> Evaluation:
    from sklearn.metrics import precision_recall_curve, roc_curve

    false_positive, true_positive, _ = roc_curve(y_test, scores)
    precision, recall, _ = precision_recall_curve(y_test, scores)
    return Evaluation(
        roc=_thin(false_positive, true_positive),
        precision_recall=_thin(recall[::-1], precision[::-1]),
        importance=importance(model, x_test, y_test, seed),
        fraud_rate=float(np.mean(y_test)),
    )


def importance(
    model: FraudModel,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int8],
    seed: int = 0,
) -> dict[str, float]:
    frauds = np.flatnonzero(y == 1)
    others = np.flatnonzero(y == 0)
    take = max(IMPORTANCE_ROWS - len(frauds), 0)
    picked = np.random.default_rng(seed).choice(others, min(take, len(others)), replace=False)
    sample = x[np.concatenate([frauds[:IMPORTANCE_ROWS], picked])]
    width = sample.shape[1]
    _, reasons = model.explain(sample, top=width)
    totals = dict.fromkeys(model.feature_names, 0.0)
    for row in reasons:
        for reason in row:
            totals[reason.feature] += reason.contribution
    mean = {name: total / max(len(sample), 1) for name, total in totals.items()}
    return dict(sorted(mean.items(), key=lambda item: -item[1]))


def _thin(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Curve:
    """At most ``CURVE_POINTS`` points, evenly spread along x, ends kept."""
    if len(x) > CURVE_POINTS:
        targets = np.linspace(float(x[0]), float(x[-1]), CURVE_POINTS)
        keep = np.unique(np.concatenate([[0, len(x) - 1], np.searchsorted(x, targets)]))
        keep = keep[keep < len(x)]
        x, y = x[keep], y[keep]
    return Curve([round(float(v), 6) for v in x], [round(float(v), 6) for v in y])
