"""``lakebed train``: the candidate models on the handbook's protocol, evaluated, plotted,
tracked and registered.

Every candidate sees the same split (``lakebed.fraud.dataset``) and is scored with the
handbook's three metrics on the test days. Labels are the chargebacks known in gold when
training runs, as in the handbook, which trains on all labels of its training week.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from lakebed.config import Settings
from lakebed.fraud.dataset import (
    HANDBOOK_TRAIN_START,
    TrainingWindow,
    choose_window,
    data_range,
    read_gold_features,
    split,
)
from lakebed.fraud.evaluation import Evaluation, evaluate
from lakebed.fraud.features import FEATURE_NAMES, FEATURE_SET_VERSION
from lakebed.fraud.metrics import auc_roc, average_precision, card_precision_at_k
from lakebed.fraud.models import MODEL_NAMES, FraudModel, spec_named
from lakebed.lake.catalog import open_catalog

if TYPE_CHECKING:
    from lakebed.fraud.registry import ModelVersion

# The handbook's published results on its protocol (AUC ROC, AP, Card Precision@100):
# ch. 3.4 baselines, and ch. 5's XGBoost after model selection.
HANDBOOK_WINDOW = TrainingWindow(HANDBOOK_TRAIN_START)
HANDBOOK_RESULTS: dict[str, tuple[float, float, float]] = {
    "logistic regression": (0.871, 0.606, 0.291),
    "random forest": (0.867, 0.658, 0.287),
    "XGBoost": (0.862, 0.639, 0.273),
    "XGBoost, model selection": (0.869, 0.687, 0.303),
}


@dataclass(frozen=True)
class ModelResult:
    name: str
    title: str
    auc_roc: float
    average_precision: float
    card_precision_at_100: float
    card_precision_per_day: list[float]
    fit_seconds: float
    version: str | None

    @property
    def metrics(self) -> dict[str, float]:
        return {
            "auc_roc": self.auc_roc,
            "average_precision": self.average_precision,
            "card_precision_at_100": self.card_precision_at_100,
            "fit_seconds": self.fit_seconds,
        }


@dataclass(frozen=True)
class TrainingReport:
    window: TrainingWindow
    snapshots: dict[str, int]
    train_rows: int
    train_frauds: int
    test_rows: int
    test_frauds: int
    results: list[ModelResult]
    plots: list[Path]

    @property
    def best(self) -> ModelResult:
        """The best on Average Precision (the handbook's headline metric), then AUC."""
        return max(self.results, key=lambda r: (r.average_precision, r.auc_roc))


def models_dir(settings: Settings) -> Path:
    return settings.data_home.resolve() / "models"


def train(
    settings: Settings,
    models: Sequence[str] = MODEL_NAMES,
    register: bool = True,
    on_model: Callable[[str], None] | None = None,
) -> TrainingReport:
    """Train and evaluate ``models`` on the configured window; register each as a version."""
    for name in models:
        spec_named(name)  # unknown names fail before any work
    fraud = settings.fraud
    catalog = open_catalog(settings)
    first, last = data_range(catalog)
    window = choose_window(
        first,
        last,
        fraud.train_start,
        fraud.train_days,
        fraud.delay_days,
        fraud.test_days,
        fraud.label_wait_days,
    )
    gold = read_gold_features(catalog, window.train_start, window.test_end)
    train_set, test_set = split(gold.frame, window)
    if train_set["is_fraud"].sum() == 0 or test_set["is_fraud"].sum() == 0:
        raise ValueError(
            f"the window ({window.describe()}) has no fraud in its training or test days; "
            "choose another fraud.train_start"
        )
    x_train = train_set.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    y_train = train_set["is_fraud"].to_numpy().astype(np.int8)
    x_test = test_set.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    y_test = test_set["is_fraud"].to_numpy().astype(np.int8)

    fitted: list[tuple[FraudModel, np.ndarray, ModelResult]] = []
    evaluations: dict[str, Evaluation] = {}
    for name in models:
        if on_model:
            on_model(name)
        spec = spec_named(name)
        started = time.perf_counter()
        model = FraudModel.fit(spec, x_train, y_train)
        seconds = time.perf_counter() - started
        scores = model.score(x_test)
        precision, per_day = card_precision_at_k(
            test_set["event_date"], test_set["card_id"], y_test, scores, k=100
        )
        result = ModelResult(
            name=name,
            title=spec.title,
            auc_roc=auc_roc(y_test, scores),
            average_precision=average_precision(y_test, scores),
            card_precision_at_100=precision,
            card_precision_per_day=per_day,
            fit_seconds=seconds,
            version=None,
        )
        fitted.append((model, scores, result))
        evaluations[name] = evaluate(model, x_test, y_test, scores)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    plots = plot_curves([(r.title, s) for _, s, r in fitted], y_test, models_dir(settings) / stamp)
    results = [r for _, _, r in fitted]
    if register:
        from lakebed.fraud.registry import Registry

        registry = Registry(settings)
        tags = {
            "feature_set_version": FEATURE_SET_VERSION,
            "training_window": window.describe(),
            "train_start": str(window.train_start),
            "test_end": str(window.test_end),
            **{f"snapshot.{table}": str(snapshot) for table, snapshot in gold.snapshots.items()},
        }
        params_common: dict[str, object] = {
            "train_days": window.train_days,
            "delay_days": window.delay_days,
            "test_days": window.test_days,
            "train_rows": train_set.height,
            "test_rows": test_set.height,
        }
        results = []
        for model, _, result in fitted:
            version = registry.log(
                model,
                {**params_common, **spec_named(model.name).params},
                result.metrics,
                tags,
                plots,
                x_train[:5],
                evaluations[model.name],
            )
            results.append(_with_version(result, version.version))
    return TrainingReport(
        window=window,
        snapshots=gold.snapshots,
        train_rows=train_set.height,
        train_frauds=int(train_set["is_fraud"].sum()),
        test_rows=test_set.height,
        test_frauds=int(test_set["is_fraud"].sum()),
        results=results,
        plots=plots,
    )


def trained_on_current_gold(settings: Settings) -> list[ModelVersion]:
    """The registered versions trained on today's gold snapshots and feature set, when a
    champion is among them (then training again would give the same models); else []."""
    from lakebed.fraud.dataset import FACT_TABLE, FEATURE_TABLES
    from lakebed.fraud.registry import Registry

    if not Registry.exists(settings):
        return []
    catalog = open_catalog(settings)
    tags = {"feature_set_version": FEATURE_SET_VERSION}
    for name in (FACT_TABLE, *FEATURE_TABLES):
        if not catalog.table_exists(name):
            return []
        snapshot = catalog.load_table(name).current_snapshot()
        tags[f"snapshot.{name}"] = str(snapshot.snapshot_id if snapshot else None)
    versions = [
        version
        for version in Registry(settings).versions()
        if all(version.tags.get(key) == value for key, value in tags.items())
    ]
    return versions if any(version.champion for version in versions) else []


def _with_version(result: ModelResult, version: str) -> ModelResult:
    from dataclasses import replace

    return replace(result, version=version)


def plot_curves(
    scored: list[tuple[str, np.ndarray]], labels: np.ndarray, folder: Path
) -> list[Path]:
    """ROC and precision-recall curves of every model, one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    roc_path, pr_path = folder / "roc.png", folder / "precision_recall.png"
    figure, axis = plt.subplots(figsize=(6, 5))
    for title, scores in scored:
        false_positive, true_positive, _ = roc_curve(labels, scores)
        axis.plot(false_positive, true_positive, label=f"{title} ({auc_roc(labels, scores):.3f})")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUC)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(roc_path, dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 5))
    for title, scores in scored:
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision(labels, scores)
        axis.step(recall, precision, where="post", label=f"{title} ({ap:.3f})")
    axis.axhline(float(np.mean(labels)), linestyle=":", color="grey")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall (AP)")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(pr_path, dpi=110)
    plt.close(figure)
    return [roc_path, pr_path]


def metrics_frame(results: Sequence[ModelResult]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": [r.title for r in results],
            "auc_roc": [r.auc_roc for r in results],
            "average_precision": [r.average_precision for r in results],
            "card_precision_at_100": [r.card_precision_at_100 for r in results],
        }
    )
