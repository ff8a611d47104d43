"""Tracking and registry with MLflow, its SQLite backend and artifacts in the data home.

Every trained model is an MLflow run (parameters, metrics, the feature set's version, the
training window, the Iceberg snapshot ids it read, its curves) and a version of one
registered model. The champion is the version carrying the alias ``champion``; scoring
loads that version and nothing else, so ``lakebed models promote`` is the whole deployment.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakebed.config import Settings
from lakebed.fraud.evaluation import ARTIFACT as EVALUATION_ARTIFACT
from lakebed.fraud.evaluation import Evaluation
from lakebed.fraud.models import FraudModel

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow
import mlflow.sklearn
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Created version" chatter

EXPERIMENT = "lakebed-fraud"
CHAMPION = "champion"
TYPICAL_ARTIFACT = "typical.json"
# Saved with skops (no pickle); these are the types our candidates hold beyond sklearn's
# safe set. We write every model file ourselves, so loading them is trusted.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"]


class NoChampionError(LookupError):
    """No model version is promoted yet."""


class UnknownVersionError(LookupError):
    """The version asked for is not registered."""


def mlflow_dir(settings: Settings) -> Path:
    return settings.data_home.resolve() / "mlflow"


def tracking_uri(settings: Settings) -> str:
    return f"sqlite:///{mlflow_dir(settings) / 'mlflow.db'}"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    model: str
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    champion: bool


class Registry:
    """The registered fraud model of one data home."""

    @staticmethod
    def exists(settings: Settings) -> bool:
        """Whether anything was ever tracked here (opening creates the database)."""
        return (mlflow_dir(settings) / "mlflow.db").exists()

    def __init__(self, settings: Settings) -> None:
        folder = mlflow_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        self.name = settings.fraud.registered_model
        self.uri = tracking_uri(settings)
        self._artifacts = (folder / "artifacts").as_uri()
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def _activate(self) -> str:
        """Point MLflow's fluent API here; returns the experiment id."""
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(self.client.create_experiment(EXPERIMENT, artifact_location=self._artifacts))

    def log(
        self,
        model: FraudModel,
        params: dict[str, object],
        metrics: dict[str, float],
        tags: dict[str, str],
        artifacts: list[Path],
        example: np.ndarray[Any, np.dtype[np.float64]],
        evaluation: Evaluation | None = None,
    ) -> ModelVersion:
        """One run for ``model``, registered as a new version; returns that version."""
        experiment_id = self._activate()
        with mlflow.start_run(experiment_id=experiment_id, run_name=model.name) as run:
            mlflow.log_params({"model": model.name, **params})
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            with tempfile.TemporaryDirectory() as scratch:
                typical = Path(scratch) / TYPICAL_ARTIFACT
                typical.write_text(
                    json.dumps(dict(zip(model.feature_names, model.typical.tolist(), strict=True)))
                )
                mlflow.log_artifact(str(typical))
                if evaluation is not None:
                    evaluated = Path(scratch) / EVALUATION_ARTIFACT
                    evaluated.write_text(json.dumps(evaluation.to_dict()))
                    mlflow.log_artifact(str(evaluated))
            for artifact in artifacts:
                mlflow.log_artifact(str(artifact), artifact_path="curves")
            signature = mlflow.models.infer_signature(example, model.score(example))
            # MLflow prints "Created version ..." to stderr; the CLI says it in its table.
            with contextlib.redirect_stderr(io.StringIO()):
                info = self._log_model(model, signature)
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(self.name, version, "model", model.name)
        return self._version(version, run.info.run_id, champion=None)

    def _log_model(self, model: FraudModel, signature: Any) -> Any:
        return mlflow.sklearn.log_model(
            model.classifier,
            name="model",
            signature=signature,
            pip_requirements=["scikit-learn", "xgboost-cpu"],
            registered_model_name=self.name,
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
        )

    def versions(self) -> list[ModelVersion]:
        """Every registered version, newest first."""
        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException:
            return []
        champion = self._champion_version()
        versions = [
            self._version(str(v.version), str(v.run_id), champion=champion == str(v.version))
            for v in found
        ]
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def _version(self, version: str, run_id: str, champion: bool | None) -> ModelVersion:
        run = self.client.get_run(run_id)
        is_champion = champion if champion is not None else self._champion_version() == version
        return ModelVersion(
            version=version,
            model=str(run.data.params.get("model", "?")),
            run_id=run_id,
            metrics=dict(run.data.metrics),
            tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            champion=is_champion,
        )

    def _champion_version(self) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.name, CHAMPION).version)
        except MlflowException:
            return None

    def promote(self, version: str) -> ModelVersion:
        """Make ``version`` the champion (the alias moves; the old champion stays)."""
        known = {v.version: v for v in self.versions()}
        if version not in known:
            choices = ", ".join(sorted(known, key=int)) or "none yet: run `lakebed train`"
            raise UnknownVersionError(f"no version {version} of {self.name}; versions: {choices}")
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        return self._version(version, known[version].run_id, champion=True)

    def champion(self) -> ModelVersion:
        version = self._champion_version()
        if version is None:
            raise NoChampionError(
                f"no champion for {self.name}: run `lakebed train`, then "
                "`lakebed models promote VERSION`"
            )
        return self._version(
            version, str(self.client.get_model_version(self.name, version).run_id), True
        )

    def evaluation(self, version: ModelVersion) -> Evaluation | None:
        """The curves and importance logged with ``version`` (None: trained before they
        were logged, or the artifact is unreadable)."""
        try:
            path = self.client.download_artifacts(version.run_id, EVALUATION_ARTIFACT)
            return Evaluation.from_dict(json.loads(Path(path).read_text()))
        except (MlflowException, OSError, ValueError, KeyError, TypeError):
            return None

    def version(self, version: str) -> ModelVersion:
        for known in self.versions():
            if known.version == version:
                return known
        raise UnknownVersionError(f"no version {version} of {self.name}")

    def load(self, version: ModelVersion) -> FraudModel:
        """The fitted model of ``version``, ready to score."""
        self._activate()
        classifier = mlflow.sklearn.load_model(f"models:/{self.name}/{version.version}")
        path = self.client.download_artifacts(version.run_id, TYPICAL_ARTIFACT)
        typical: dict[str, float] = json.loads(Path(path).read_text())
        return FraudModel(
            name=version.model,
            classifier=classifier,
            typical=np.array(list(typical.values()), dtype=np.float64),
            feature_names=tuple(typical),
            feature_set_version=version.tags.get("feature_set_version", "?"),
        )
