"""Fingerprints of tables: row counts and per-column checksums that two engines can agree on.

The same gold table built by DuckDB (local profile) and by Spark (cluster profile) holds
the same values in slightly different types — ``sum`` of a ``decimal(18,2)`` is
``decimal(38,2)`` in one and ``decimal(28,2)`` in the other, ``year()`` a BIGINT or an INT.
So values are compared in a canonical text form, exactly, for integers, decimals, text,
dates and timestamps. Floating-point columns get their count of values, correctly rounded sum
and sum of squares instead, compared to ``REL_TOL``: their last bits depend on the order in which an
engine summed them, and rounding each value to fewer digits would still split values that
sit on a rounding boundary. A column's checksum does not depend on row order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa

REL_TOL = 1e-9
# Columns that say when and in which batch a row was loaded: they differ between any two
# runs, on one profile as on two, so comparisons of builds leave them out.
LOAD_COLUMNS = ("_loaded_at", "_built_at", "ingested_at", "batch_id")


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    columns: dict[str, str]  # column name -> checksum (exact columns)
    sums: dict[str, tuple[float, float, float]]  # name -> (values, sum, sum of squares)

    def differences(self, other: Fingerprint) -> list[str]:
        """What differs, in words (empty when the fingerprints agree)."""
        found = []
        if self.rows != other.rows:
            found.append(f"rows: {self.rows} vs {other.rows}")
        for name in sorted(self.columns.keys() | other.columns.keys()):
            mine, theirs = self.columns.get(name), other.columns.get(name)
            if mine is None or theirs is None:
                found.append(f"column {name}: only on one side, or of another kind")
            elif mine != theirs:
                found.append(f"column {name}: checksums differ")
        for name in sorted(self.sums.keys() | other.sums.keys()):
            ours, others = self.sums.get(name), other.sums.get(name)
            if ours is None or others is None:
                found.append(f"column {name}: only on one side, or of another kind")
            elif not all(
                math.isclose(a, b, rel_tol=REL_TOL) for a, b in zip(ours, others, strict=True)
            ):
                found.append(f"column {name}: sums differ ({ours[1]!r} vs {others[1]!r})")
        return found


def canonical(value: Any) -> str:
    """One text form per value, whatever the engine's type for it."""
    if value is None:
        return "∅"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return str(value)


def fingerprint(table: pa.Table, *, exclude: tuple[str, ...] = ()) -> Fingerprint:
    """Row count and a checksum per column (columns in ``exclude`` left out)."""
    columns = {}
    sums = {}
    for name in table.column_names:
        if name in exclude:
            continue
        if pa.types.is_floating(table.schema.field(name).type):
            floats = [value for value in table.column(name).to_pylist() if value is not None]
            sums[name] = (
                float(len(floats)),
                math.fsum(floats),
                math.fsum(value * value for value in floats),
            )
            continue
        values = sorted(canonical(value) for value in table.column(name).to_pylist())
        digest = hashlib.sha256()
        for text in values:
            digest.update(text.encode())
            digest.update(b"\x00")
        columns[name] = digest.hexdigest()[:16]
    return Fingerprint(table.num_rows, columns, sums)
