"""The handbook's evaluation metrics: AUC ROC, Average Precision and Card Precision@k.

AUC and AP follow scikit-learn's definitions (ties handled the same way: AUC by average
ranks, AP as the step-wise sum over distinct thresholds), written with NumPy so scoring
code does not need scikit-learn. Card Precision@k follows the handbook (Le Borgne et al.,
chapter 4.2): for each test day, the share of truly compromised cards among the k cards
with the highest score that day, cards detected on earlier days left out, averaged over
the days.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.stats import rankdata

Array = npt.ArrayLike


def _binary(labels: Array, scores: Array) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    y = np.asarray(labels).astype(np.int8).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y, s


def auc_roc(labels: Array, scores: Array) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y, s = _binary(labels, scores)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes among the labels")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(labels: Array, scores: Array) -> float:
    """AP = sum over thresholds of (recall step) x precision, highest scores first."""
    y, s = _binary(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("average precision needs at least one positive label")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # Only the last index of each run of equal scores is a threshold.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    true_positives = np.cumsum(y)[last]
    precision = true_positives / (last + 1)
    recall = true_positives / positives
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def card_precision_at_k(
    days: Sequence[object] | pl.Series,
    cards: Sequence[object] | pl.Series,
    labels: Array,
    scores: Array,
    k: int = 100,
) -> tuple[float, list[float]]:
    """(mean, per-day values) of Card Precision@k, the handbook's way.

    A card is compromised on a day if any of its transactions that day is fraud; its score
    is its highest transaction score. A card counted as detected on a day (in the day's
    top k and compromised) is removed from the following days, as investigators would
    have blocked it. Precision divides by k even on a day with fewer cards.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    y, s = _binary(labels, scores)
    frame = pl.DataFrame({"day": pl.Series(days), "card": pl.Series(cards), "label": y, "score": s})
    detected: set[object] = set()
    per_day: list[float] = []
    for day in sorted(frame["day"].unique().to_list()):
        cards_today = (
            frame.filter((pl.col("day") == day) & ~pl.col("card").is_in(list(detected)))
            .group_by("card")
            .agg(pl.col("score").max(), pl.col("label").max())
            .sort(["score", "card"], descending=[True, False])
            .head(k)
        )
        hits = cards_today.filter(pl.col("label") == 1)["card"].to_list()
        per_day.append(len(hits) / k)
        detected.update(hits)
    return (float(np.mean(per_day)) if per_day else 0.0), per_day
