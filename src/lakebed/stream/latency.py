"""Latency percentiles in bounded memory: a log-spaced histogram (about 1% resolution),
so a worker that runs for weeks keeps the same few kilobytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

LOW_MS, HIGH_MS, BINS = 0.01, 100_000.0, 1_400


class Latencies:
    edges = np.geomspace(LOW_MS, HIGH_MS, BINS + 1)

    def __init__(self) -> None:
        self.counts = np.zeros(BINS, dtype=np.int64)

    def add(self, values_ms: npt.ArrayLike) -> None:
        values = np.clip(np.asarray(values_ms, dtype=np.float64), LOW_MS, HIGH_MS * 0.999)
        bins = np.searchsorted(self.edges, values, side="right") - 1
        self.counts += np.bincount(bins, minlength=BINS)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float:
        """The upper edge of the bin holding the q-th percentile (q in 0..100)."""
        total = len(self)
        if not total:
            return float("nan")
        rank = int(np.ceil(q / 100 * total))
        index = int(np.searchsorted(np.cumsum(self.counts), max(rank, 1)))
        return float(self.edges[index + 1])

    def merge(self, other: Latencies) -> None:
        self.counts += other.counts


def plot_latencies(series: dict[str, Latencies], path: Path, title: str) -> Path:
    """Histograms of produce-to-output latency (log scale), p50/p99 marked, one per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, (label, latencies) in enumerate(series.items()):
        colour = f"C{index % 10}"
        used = np.flatnonzero(latencies.counts)
        if not len(used):
            continue
        low, high = used[0], used[-1] + 1
        centres = np.sqrt(Latencies.edges[low:high] * Latencies.edges[low + 1 : high + 1])
        share = latencies.counts[low:high] / len(latencies)
        p50, p99 = latencies.percentile(50), latencies.percentile(99)
        axis.step(
            centres,
            share,
            where="mid",
            color=colour,
            label=f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms",
        )
        axis.axvline(p99, color=colour, linestyle=":")
    axis.set_xscale("log")
    axis.set(xlabel="produce → scored/alert latency (ms)", ylabel="share of events", title=title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
