"""Customers, terminals and who can pay where: the static part of a world.

Customers and terminals sit on a 100 x 100 grid as in the handbook; a customer uses every
terminal closer than the radius. The reach is kept as a CSR structure (offsets into one
array of terminal ids) so that picking a terminal for a million transactions is one
vectorised gather, and memory grows with the number of customer-terminal pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.spatial import cKDTree

from lakebed.world.spec import WorldSpec
from lakebed.world.streams import Purpose, stream

GRID = 100.0

# Merchant category codes (ISO 18245) with the share of terminals of each kind.
MERCHANT_CATEGORIES: tuple[tuple[str, str, float], ...] = (
    ("5411", "Grocery stores, supermarkets", 0.22),
    ("5812", "Restaurants", 0.14),
    ("5814", "Fast food", 0.10),
    ("5541", "Service stations", 0.08),
    ("5912", "Drug stores, pharmacies", 0.07),
    ("5311", "Department stores", 0.06),
    ("5999", "Miscellaneous retail", 0.09),
    ("5732", "Electronics stores", 0.05),
    ("4111", "Local commuter transport", 0.06),
    ("7011", "Hotels, motels, resorts", 0.04),
    ("5944", "Jewelry, watches, silverware", 0.02),
    ("5691", "Clothing stores", 0.07),
)

# The grid spans three time zones west to east, so that local timestamps in the feed carry
# different offsets (and daylight saving changes) that the lakehouse must normalise.
TIME_ZONES: tuple[str, ...] = ("Europe/Lisbon", "Europe/Paris", "Europe/Helsinki")

CUSTOMER_BLOCK = 20_000


@dataclass(frozen=True)
class Customers:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    mean_amount: npt.NDArray[np.float64]
    std_amount: npt.NDArray[np.float64]
    mean_tx_per_day: npt.NDArray[np.float64]

    @property
    def size(self) -> int:
        return len(self.x)

    def to_frame(self, reach: Reach) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "customer_id": np.arange(self.size, dtype=np.int64),
                "x": self.x,
                "y": self.y,
                "mean_amount": self.mean_amount,
                "std_amount": self.std_amount,
                "mean_tx_per_day": self.mean_tx_per_day,
                "n_terminals": reach.counts,
            }
        )


@dataclass(frozen=True)
class Terminals:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    mcc_index: npt.NDArray[np.int64]
    currency_index: npt.NDArray[np.int64]

    @property
    def size(self) -> int:
        return len(self.x)

    @property
    def time_zone_index(self) -> npt.NDArray[np.int64]:
        bands = np.floor(self.x / GRID * len(TIME_ZONES)).astype(np.int64)
        return np.minimum(bands, len(TIME_ZONES) - 1)

    def to_frame(self, currencies: tuple[str, ...]) -> pl.DataFrame:
        mcc = np.array([code for code, _, _ in MERCHANT_CATEGORIES])
        names = np.array([name for _, name, _ in MERCHANT_CATEGORIES])
        return pl.DataFrame(
            {
                "terminal_id": np.arange(self.size, dtype=np.int64),
                "x": self.x,
                "y": self.y,
                "mcc": mcc[self.mcc_index],
                "merchant_category": names[self.mcc_index],
                "time_zone": np.array(TIME_ZONES)[self.time_zone_index],
                "currency": np.array(currencies)[self.currency_index],
            }
        )


@dataclass(frozen=True)
class Reach:
    """Terminals within the radius of each customer, ascending ids, in CSR form."""

    offsets: npt.NDArray[np.int64]
    terminal_ids: npt.NDArray[np.int64]

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)


def make_customers(spec: WorldSpec) -> Customers:
    rng = stream(spec.seed, Purpose.CUSTOMERS)
    n = spec.n_customers
    x = rng.uniform(0, GRID, n)
    y = rng.uniform(0, GRID, n)
    mean_amount = rng.uniform(5, 100, n)
    mean_tx_per_day = rng.uniform(0, 4, n)
    return Customers(x, y, mean_amount, mean_amount / 2, mean_tx_per_day)


def make_terminals(spec: WorldSpec) -> Terminals:
    rng = stream(spec.seed, Purpose.TERMINALS)
    n = spec.n_terminals
    x = rng.uniform(0, GRID, n)
    y = rng.uniform(0, GRID, n)
    attributes = stream(spec.seed, Purpose.TERMINAL_ATTRIBUTES)
    weights = np.array([share for _, _, share in MERCHANT_CATEGORIES])
    mcc_index = attributes.choice(len(MERCHANT_CATEGORIES), size=n, p=weights / weights.sum())
    currency_index = attributes.integers(0, len(spec.feed.currencies), size=n)
    return Terminals(x, y, mcc_index.astype(np.int64), currency_index.astype(np.int64))


def make_reach(customers: Customers, terminals: Terminals, radius: float) -> Reach:
    """Pairs closer than ``radius`` (strictly, as the handbook's ``dist < r``)."""
    terminal_tree = cKDTree(np.column_stack([terminals.x, terminals.y]))
    counts = np.zeros(customers.size, dtype=np.int64)
    ids: list[npt.NDArray[np.int64]] = []
    # Blocks of customers keep the pair list bounded in memory for very large worlds.
    for start in range(0, customers.size, CUSTOMER_BLOCK):
        stop = min(start + CUSTOMER_BLOCK, customers.size)
        block = cKDTree(np.column_stack([customers.x[start:stop], customers.y[start:stop]]))
        pairs = block.sparse_distance_matrix(terminal_tree, radius, output_type="ndarray")
        pairs = pairs[pairs["v"] < radius]
        order = np.lexsort((pairs["j"], pairs["i"]))
        rows = pairs["i"][order].astype(np.int64)
        ids.append(pairs["j"][order].astype(np.int64))
        counts[start:stop] = np.bincount(rows, minlength=stop - start)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    terminal_ids = np.concatenate(ids) if ids else np.empty(0, dtype=np.int64)
    return Reach(offsets, terminal_ids)
