"""Metric functions against small cases computed by hand."""

from __future__ import annotations

import pytest

from lakebed.fraud.metrics import auc_roc, average_precision, card_precision_at_k


def test_auc_counts_ordered_pairs() -> None:
    # Positives score 0.9 and 0.4; negatives 0.8, 0.3, 0.1. Of the 6 pairs, the positive
    # wins 5 (0.9 beats all three, 0.4 beats 0.3 and 0.1): AUC = 5/6.
    assert auc_roc([1, 0, 1, 0, 0], [0.9, 0.8, 0.4, 0.3, 0.1]) == pytest.approx(5 / 6)


def test_auc_counts_ties_as_half() -> None:
    assert auc_roc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert auc_roc([1, 0, 0], [0.7, 0.7, 0.1]) == pytest.approx(0.75)


def test_auc_perfect_and_reversed() -> None:
    assert auc_roc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc_roc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_average_precision_by_hand() -> None:
    # Ranked: 1 (P=1/1, R=1/2), 0, 1 (P=2/3, R=2/2): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(5 / 6)


def test_average_precision_ties_form_one_threshold() -> None:
    # All scores equal: one threshold with precision 2/4 and recall 1.
    assert average_precision([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)


def test_metrics_refuse_what_they_cannot_measure() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auc_roc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        auc_roc([1, 0, 1], [0.2, 0.3])


def test_card_precision_at_k_by_hand() -> None:
    # Day 1: card A (fraud, 0.9), B (genuine, 0.8), C (fraud, 0.1). Top 2 = A, B: 1 hit, 1/2.
    # Day 2: A is already detected and left out; C (fraud, 0.7), D (genuine, 0.6), E
    # (genuine, 0.5). Top 2 = C, D: 1 hit, 1/2. Day 3: only B, genuine: 0/2.
    days = [1, 1, 1, 1, 2, 2, 2, 2, 3]
    cards = ["A", "A", "B", "C", "A", "C", "D", "E", "B"]
    labels = [1, 0, 0, 1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.2, 0.8, 0.1, 0.99, 0.7, 0.6, 0.5, 0.3]
    mean, per_day = card_precision_at_k(days, cards, labels, scores, k=2)
    assert per_day == [0.5, 0.5, 0.0]
    assert mean == pytest.approx(1 / 3)


def test_card_precision_uses_the_card_not_the_transaction() -> None:
    # One card with three fraudulent transactions counts once; k=2 divides by 2 anyway.
    mean, _ = card_precision_at_k([1, 1, 1], ["A", "A", "A"], [1, 1, 1], [0.9, 0.8, 0.7], k=2)
    assert mean == 0.5
