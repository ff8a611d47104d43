"""Candidates build, and a score's reasons name what drives it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from lakebed.fraud.features import FEATURE_NAMES
from lakebed.fraud.models import MODEL_NAMES, MODEL_SPECS, FraudModel, spec_named


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2_000, len(FEATURE_NAMES)))
    y = (x[:, 0] > 1.5).astype(np.int8)  # only "amount" matters
    return x, y


def test_the_handbooks_candidates_are_there() -> None:
    assert MODEL_NAMES == (
        "logistic_regression",
        "decision_tree_depth_2",
        "decision_tree",
        "random_forest",
        "xgboost",
    )
    with pytest.raises(KeyError, match="choose from"):
        spec_named("svm")


@pytest.mark.parametrize("spec", MODEL_SPECS, ids=MODEL_NAMES)
def test_reasons_name_the_feature_that_drives_the_score(spec: object) -> None:
    x, y = _data()
    model = FraudModel.fit(spec, x, y)  # type: ignore[arg-type]
    suspicious = np.zeros((1, len(FEATURE_NAMES)))
    suspicious[0, 0] = 3.0
    [reasons] = model.reasons(suspicious, top=3)
    assert reasons, "a high score has at least one reason"
    assert reasons[0].feature == "amount"
    assert reasons[0].value == 3.0
    assert reasons[0].contribution > 0
    assert all(r.contribution >= reasons[-1].contribution for r in reasons)


def test_fitting_is_deterministic() -> None:
    x, y = _data()
    for spec in MODEL_SPECS:
        first = FraudModel.fit(spec, x, y).score(x)
        second = FraudModel.fit(spec, x, y).score(x)
        # The random forest predicts on two threads that add their trees' votes in the
        # order they finish: equal to the last bits of a double, not bit for bit.
        np.testing.assert_allclose(first, second, rtol=1e-12, atol=0, err_msg=spec.name)


def test_the_direct_xgboost_path_scores_as_scikit_learn_does() -> None:
    x, y = _data()
    model = FraudModel.fit(spec_named("xgboost"), x, y)
    rows = np.vstack([_data(seed=1)[0][:500], np.full((1, x.shape[1]), np.nan)])
    expected = model.classifier.predict_proba(rows)[:, 1].astype(np.float64)
    np.testing.assert_array_equal(model.score(rows), expected)  # bit for bit
    np.testing.assert_array_equal(model.single_threaded().score(rows[:3]), expected[:3])
    np.testing.assert_array_equal(model.score(rows[-1:]), expected[-1:])  # the NaN row alone
    assert model.score(rows[:0]).shape == (0,)


def test_scoring_leaves_no_cyclic_garbage() -> None:
    """A stream worker scores thousands of small batches; garbage that only the cyclic
    collector frees (XGBoost's own prediction method defines a class per call) turns
    into collector pauses in the engine's latency."""
    x, y = _data()
    model = FraudModel.fit(spec_named("xgboost"), x, y).single_threaded()
    model.score(x[:12])
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(50):
            model.score(x[:12])
        created = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert created < 10, f"{created} objects for the cyclic collector after 50 calls"
