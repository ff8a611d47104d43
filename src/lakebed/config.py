"""Lakebed's one settings object: ``lakebed.toml``, then ``LAKEBED_*`` environment variables.

Precedence, highest first: values passed in code (the CLI's options), ``LAKEBED_*``
variables (nested with ``__``, e.g. ``LAKEBED_WORLD__N_DAYS=30``), the TOML file
(``./lakebed.toml`` or the file named by ``LAKEBED_CONFIG``), then the defaults. This is
the only module that reads the environment; everything else receives a ``Settings``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lakebed.world.spec import WorldSpec

Profile = Literal["local", "cluster"]
CONFIG_FILE_VARIABLE = "LAKEBED_CONFIG"
MASK = "********"


def config_file() -> Path:
    return Path(os.environ.get(CONFIG_FILE_VARIABLE, "lakebed.toml"))


class LakeSettings(BaseModel):
    """Where the Iceberg catalog and warehouse live. Empty means the profile's default:
    SQLite and a folder under the data home for the local profile. The ``s3_*`` settings
    reach an ``s3://`` warehouse on any S3-compatible server (the cluster profile's)."""

    model_config = {"extra": "forbid"}

    catalog_uri: str | None = Field(None, description="SQLAlchemy URI of the SQL catalog")
    warehouse: str | None = Field(None, description="warehouse location (file:// or s3://)")
    ingest_batch_files: int = Field(32, gt=0, description="landing files per bronze commit")
    s3_endpoint: str | None = Field(
        None, description="S3 API address, e.g. http://127.0.0.1:19000; empty: AWS"
    )
    s3_region: str = Field("us-east-1", description="S3 region (self-hosted servers ignore it)")
    s3_access_key: str | None = Field(None, description="S3 access key id")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key")
    s3_path_style: bool = Field(
        True,
        description="bucket in the URL path, as self-hosted S3 servers need; "
        "false: virtual-hosted (bucket.host)",
    )


class ServeSettings(BaseModel):
    """Read-only SQL serving (``lakebed sql``, ``POST /sql``) and the API server."""

    model_config = {"extra": "forbid"}

    max_rows: int = Field(10_000, gt=0, description="rows returned at most per query")
    timeout_seconds: float = Field(30.0, gt=0, description="a query running longer is cancelled")
    host: str = Field("127.0.0.1", description="API bind address (loopback by default)")
    port: int = Field(8000, gt=0, lt=65536)
    trino_url: str = Field(
        "http://127.0.0.1:18090",
        pattern=r"^https?://[^/\s]+/?$",
        description="the cluster profile's SQL engine: Trino's address (http[s]://host:port)",
    )
    trino_user: str = Field(
        "lakebed_reader",
        min_length=1,
        description="the Trino user queries run as; Trino lets it only read silver and gold",
    )
    trino_catalog: str = Field(
        "lakebed",
        min_length=1,
        description="the Trino catalog holding the lakehouse (Iceberg over lake.catalog_uri)",
    )


class FraudSettings(BaseModel):
    """Training (the handbook's protocol), the model registry, and scoring decisions."""

    model_config = {"extra": "forbid"}

    train_start: date | None = Field(
        None,
        description="first training day; empty: the handbook's 2018-07-25 when the data "
        "covers it, else the latest window whose test labels had time to arrive",
    )
    train_days: int = Field(7, gt=0, description="days in the training window")
    delay_days: int = Field(7, ge=0, description="days between training and test (labels arrive)")
    test_days: int = Field(7, gt=0, description="days in the test window")
    label_wait_days: int = Field(
        14, ge=0, description="days after the test window that its chargebacks may take"
    )
    registered_model: str = Field("lakebed-fraud", description="MLflow registered model name")
    review_threshold: float = Field(0.3, gt=0, lt=1, description="score from which to review")
    block_threshold: float = Field(0.8, gt=0, lt=1, description="score from which to block")
    top_reasons: int = Field(3, gt=0, description="feature contributions returned per score")

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> FraudSettings:
        if self.block_threshold < self.review_threshold:
            raise ValueError(
                f"block_threshold {self.block_threshold} is below "
                f"review_threshold {self.review_threshold}"
            )
        return self


class DashboardSettings(BaseModel):
    """The Streamlit dashboard (``lakebed dashboard``) and the API it talks to."""

    model_config = {"extra": "forbid"}

    host: str = Field("127.0.0.1", description="dashboard bind address (loopback by default)")
    port: int = Field(8501, gt=0, lt=65536)
    api_url: str | None = Field(
        None,
        description="the API to show; empty: serve.host:serve.port, started if not answering",
    )


class StreamSettings(BaseModel):
    """The real-time engine: where Kafka and Redis are (cluster profile), micro-batches."""

    model_config = {"extra": "forbid"}

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:16379/0"), description="Redis URL (may hold a password)"
    )
    group: str = Field("lakebed-stream", description="the engine's Kafka consumer group")
    batch_size: int = Field(1000, gt=0, description="events scored together at most")
    poll_timeout_ms: int = Field(
        5, ge=0, description="how long a poll waits when nothing has arrived"
    )
    commit_interval_ms: int | None = Field(
        None,
        ge=0,
        description="least ms between transaction starts; empty: the log's (Kafka 10, else 0)",
    )
    alert_threshold: float | None = Field(
        None, gt=0, lt=1, description="score from which to alert; empty: fraud.review_threshold"
    )
    replay_days: int = Field(7, gt=0, description="days of the world the demo replays")
    replay_rate: float = Field(10_000, gt=0, description="offered load of a replay, events/s")


class RagSettings(BaseModel):
    """The RAG service: corpus, chunking, retrieval, the vector store and generation."""

    model_config = {"extra": "forbid"}

    corpus: Path | None = Field(
        None, description="folder of documents to index; empty: the corpus shipped with Lakebed"
    )
    users_file: Path | None = Field(
        None, description="TOML of users and their access groups; empty: the shipped one"
    )
    chunk_size: int = Field(800, gt=50, description="characters per chunk at most")
    chunk_overlap: int = Field(120, ge=0, description="characters shared by adjacent chunks")
    embedding_batch: int = Field(32, gt=0, description="chunks embedded together")
    embedding_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 where the CPU has bfloat16 units, else float32"
    )
    top_k: int = Field(5, gt=0, description="passages an answer draws on")
    candidates: int = Field(30, gt=0, description="hits per retriever before fusion")
    min_similarity: float = Field(
        0.3,
        ge=-1,
        le=1,
        description="cosine similarity below which a passage counts as unrelated",
    )
    collection: str = Field("LakebedChunk", description="table (LanceDB) or class (Weaviate)")
    weaviate_url: str = Field("http://127.0.0.1:18080", description="Weaviate REST address")
    weaviate_grpc_port: int = Field(18081, gt=0, lt=65536, description="Weaviate gRPC port")
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint for generated answers; empty: extractive"
    )
    llm_model: str | None = Field(None, description="model name sent to the endpoint")
    llm_api_key: SecretStr | None = Field(None, description="bearer token for the endpoint")
    llm_timeout_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap {self.chunk_overlap} must be below chunk_size {self.chunk_size}"
            )
        return self


class Settings(BaseSettings):
    """Resolved configuration. Secrets are ``SecretStr`` so they print masked."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEBED_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    profile: Profile = Field("local", description="local (embedded engines) or cluster")
    data_home: Path = Field(Path("lakebed-data"), description="where all data is written")
    world: WorldSpec = Field(WorldSpec(), description="the payments world simulator")
    lake: LakeSettings = Field(LakeSettings(), description="Iceberg catalog and warehouse")
    serve: ServeSettings = Field(ServeSettings(), description="SQL serving and the API")
    fraud: FraudSettings = Field(FraudSettings(), description="fraud model training and scoring")
    stream: StreamSettings = Field(StreamSettings(), description="the real-time fraud engine")
    rag: RagSettings = Field(RagSettings(), description="the RAG service over internal documents")
    dashboard: DashboardSettings = Field(DashboardSettings(), description="the web dashboard")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    def masked(self) -> dict[str, Any]:
        """Every setting as plain data, secrets replaced by a mask (safe to print)."""
        masked: dict[str, Any] = _mask(self, self.model_dump())
        return masked


def _mask(model: Any, dumped: Any) -> Any:
    if isinstance(model, SecretStr):
        return MASK
    if isinstance(dumped, dict) and isinstance(model, BaseModel):
        return {key: _mask(getattr(model, key), value) for key, value in dumped.items()}
    return dumped


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"world": {"seed": 0}}`` -> ``{"world.seed": 0}``, for printing as a table."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
