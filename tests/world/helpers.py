"""Reading a generated world back, for assertions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def truth(home: Path) -> pl.DataFrame:
    return pl.read_parquet(home / "world" / "transactions" / "*.parquet").sort("transaction_id")


def manifest(home: Path) -> pl.DataFrame:
    return pl.read_csv(home / "world" / "dirty_rows.csv")


def feed_lines(home: Path, folder: str = "transactions") -> dict[str, list[bytes]]:
    """Lines of every landing file of one feed, by path relative to the data home."""
    return {
        path.relative_to(home).as_posix(): path.read_bytes().splitlines()
        for path in sorted((home / "landing" / folder).glob("*.jsonl"))
    }
