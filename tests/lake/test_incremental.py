"""fct_transactions is rebuilt by event date: only the days touched by new input change."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
from lakebed.world.generate import Generated
from tests.conftest import copy_world
from tests.world.helpers import manifest, truth

CUTOFF = "2018-04-25"


def _hold_back(landing: Path, held: Path) -> None:
    """Move the files delivered on or after the cutoff out of the landing area."""
    for folder in ("transactions", "chargebacks"):
        (held / folder).mkdir(parents=True)
        for path in (landing / folder).glob("*.jsonl"):
            if path.stem.split("_")[-1] >= CUTOFF:
                path.rename(held / folder / path.name)


def test_a_second_delivery_rebuilds_only_the_dates_it_touches(
    small_world: Generated, tmp_path: Path
) -> None:
    settings = copy_world(small_world, tmp_path / "home")
    landing = settings.data_home / "landing"
    _hold_back(landing, tmp_path / "held")
    catalog = open_catalog(settings)
    ingest_stage(settings, catalog)
    build_stage(settings, catalog)
    publish_stage(settings, catalog)
    fct = catalog.load_table("gold.fct_transactions")
    first = pl.scan_iceberg(fct).collect()
    loaded = first["_loaded_at"].max()

    for folder in ("transactions", "chargebacks"):
        for path in (tmp_path / "held" / folder).iterdir():
            shutil.move(path, landing / folder / path.name)
    ingest_stage(settings, catalog)
    build_stage(settings, catalog)
    published = {p.identifier: p for p in publish_stage(settings, catalog)}
    assert published["gold.fct_transactions"].mode == "partitions replaced"

    silver = pl.scan_iceberg(catalog.load_table("silver.transactions")).collect()
    chargebacks = pl.scan_iceberg(catalog.load_table("silver.chargebacks")).collect()
    new_rows = silver.filter(pl.col("ingested_at") > loaded)["event_date"]
    labelled = chargebacks.filter(pl.col("ingested_at") > loaded).join(silver, on="transaction_id")
    expected = set(new_rows) | set(labelled["event_date"])

    second = pl.scan_iceberg(fct.refresh()).collect()
    rebuilt = set(second.filter(pl.col("_built_at") == second["_built_at"].max())["event_date"])
    assert rebuilt == expected
    assert min(rebuilt).isoformat() < CUTOFF  # older days were relabelled by new chargebacks
    untouched = second.filter(~pl.col("event_date").is_in(list(rebuilt)))
    assert untouched["_built_at"].n_unique() == 1
    assert untouched["_built_at"][0] == first["_built_at"][0]

    # And the result equals the truth, as a full build would.
    assert len(second) == len(silver) == second["transaction_id"].n_unique()
    frauds = truth(settings.data_home).filter(pl.col("is_fraud"))["transaction_id"]
    reported = second.filter(pl.col("is_fraud"))["transaction_id"].str.slice(3).cast(pl.Int64)
    malformed = manifest(settings.data_home).filter(~pl.col("kind").is_in(["duplicate", "late"]))
    unreadable = set(malformed["transaction_id"].str.slice(3).cast(pl.Int64))
    assert set(reported) == set(frauds) - unreadable  # all but frauds whose line was broken
