"""Rich renderings of what the stages report: what a person reads at the end of a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from lakebed.lake.bronze import IngestReport
from lakebed.lake.pipeline import LakehouseReport
from lakebed.lake.publish import PublishedTable
from lakebed.lake.transform import BuildResult
from lakebed.world.generate import Generated

if TYPE_CHECKING:
    from lakebed.fraud.registry import ModelVersion
    from lakebed.fraud.train import TrainingReport
    from lakebed.rag.answer import Answer
    from lakebed.rag.evaluation import EvalReport
    from lakebed.rag.index import IndexReport
    from lakebed.stream.replay import ReplayReport

console = Console()
errors = Console(stderr=True)


@dataclass
class FlowProgress:
    """Progress callbacks of a lakehouse run, all drawn in one Rich progress display."""

    generate: Callable[[int, int], None]
    ingest: Callable[[str, int, int], None]


@contextmanager
def flow_progress(total_days: int | None = None) -> Iterator[FlowProgress]:
    """One progress display for a run: world generation (when ``total_days`` is given)
    and a bar per bronze table as ingestion reaches it."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}
        if total_days is not None:
            tasks["world"] = progress.add_task("generating world", total=total_days, unit="days")

        def generate(days: int, transactions: int) -> None:
            unit = f"days · {transactions:,} transactions"
            progress.update(tasks["world"], completed=days, unit=unit)

        def ingest(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"ingesting {table}", total=total, unit="files")
            progress.update(tasks[table], completed=done, total=total)

        yield FlowProgress(generate, ingest)


def world_table(generated: Generated) -> Table:
    summary = generated.summary
    table = Table(title="Payments world", show_header=False)
    table.add_column("", style="cyan")
    table.add_column("", justify="right")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("customers", f"{summary.customers:,}")
    table.add_row("terminals", f"{summary.terminals:,}")
    table.add_row("days", f"{summary.days:,}")
    table.add_row("frauds", f"{summary.frauds:,} ({summary.fraud_rate:.2%})")
    for scenario, count in summary.frauds_by_scenario.items():
        table.add_row(f"  {scenario.replace('_', ' ')}", f"{count:,}")
    table.add_row("chargebacks reported", f"{summary.chargebacks:,}")
    table.add_row("feed lines", f"{summary.transaction_lines:,}")
    for kind, count in summary.dirty_by_kind.items():
        table.add_row(f"  dirty: {kind.replace('_', ' ')}", f"{count:,}")
    table.add_row("transaction files", f"{summary.transaction_files:,}")
    table.add_row("chargeback files", f"{summary.chargeback_files:,}")
    table.add_row("reference files", f"{summary.reference_files:,}")
    table.add_row("bytes written", f"{summary.bytes_written / 1e6:,.1f} MB")
    verb = "reused (same spec)" if generated.reused else "generated"
    table.add_row("time", f"{generated.seconds:.1f} s, {verb}")
    return table


def ingest_table(report: IngestReport) -> Table:
    table = Table(title="Bronze ingestion")
    table.add_column("table", no_wrap=True)
    for column in ("new", "skipped", "refused", "rows", "unparsable", "commits"):
        table.add_column(column, justify="right", no_wrap=True)
    for feed in report.feeds:
        table.add_row(
            f"bronze.{feed.table}",
            f"{feed.files_ingested:,}",
            f"{feed.files_unchanged:,}",
            f"{len(feed.files_refused):,}",
            f"{feed.rows:,}",
            f"{feed.unparsed_rows:,}",
            f"{feed.batches:,}",
        )
    table.caption = (
        "new, skipped, refused: files (skipped = already ingested; refused = changed since)"
    )
    return table


def build_table(result: BuildResult) -> Table:
    table = Table(title="dbt build")
    table.add_column("kind")
    table.add_column("results", justify="left")
    for kind in ("seed", "model", "test"):
        counts: Counter[str] = result.counts(kind)
        if counts:
            table.add_row(kind, ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for failure in result.failures:
        table.add_row(f"[red]{failure.name}", failure.message[:200])
    return table


def publish_table(published: list[PublishedTable]) -> Table:
    table = Table(title="Published Iceberg tables")
    table.add_column("table")
    table.add_column("rows written", justify="right")
    table.add_column("how")
    for item in published:
        table.add_row(item.identifier, f"{item.rows:,}", item.mode)
    return table


def layers_table(report: LakehouseReport) -> Table:
    table = Table(title="Rows per layer")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in report.layer_rows.items():
        layer = name.split(".")[0]
        style = {"bronze": "yellow", "silver": "white", "gold": "bold"}.get(layer, "")
        table.add_row(f"[{style}]{name}", f"{rows:,}")
    return table


def quarantine_table(report: LakehouseReport) -> Table:
    table = Table(title="Quarantined rows by rule")
    table.add_column("feed")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    for (feed, rule), rows in report.quarantine.items():
        table.add_row(feed, rule, f"{rows:,}")
    if not report.quarantine:
        table.add_row("-", "nothing quarantined", "0")
    return table


@contextmanager
def training_progress(models: int) -> Iterator[Callable[[str], None]]:
    """A bar over the candidate models; the callback names the one being trained."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("training", total=models, unit="models")
        started = 0

        def on_model(name: str) -> None:
            nonlocal started
            progress.update(task, completed=started, unit=f"models · {name}")
            started += 1

        yield on_model
        progress.update(task, completed=models, unit="models")


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def metrics_table(report: TrainingReport) -> Table:
    """Each candidate's metrics on the test days; the best (by AP) in bold."""
    from lakebed.fraud.train import HANDBOOK_RESULTS, HANDBOOK_WINDOW

    table = Table(
        title=f"Fraud models · {report.window.describe()}",
        caption=(
            "AP: Average Precision · CP@100: Card Precision@100 · "
            f"train {report.train_rows:,} transactions ({report.train_frauds:,} fraud) · "
            f"test {report.test_rows:,} ({report.test_frauds:,} fraud, known compromised "
            "cards removed)"
        ),
    )
    for column in ("model", "AUC ROC", "AP", "CP@100", "fit s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("version", justify="right")
    best = report.best
    for result in report.results:
        style = "bold green" if result is best else ""
        table.add_row(
            result.title,
            _metric(result.auc_roc),
            _metric(result.average_precision),
            _metric(result.card_precision_at_100),
            f"{result.fit_seconds:.1f}",
            result.version or "-",
            style=style,
        )
    if report.window == HANDBOOK_WINDOW:
        for title, (auc, ap, cp) in HANDBOOK_RESULTS.items():
            table.add_row(f"[dim]handbook: {title}", *(f"[dim]{v:.3f}" for v in (auc, ap, cp)))
    return table


def versions_table(versions: list[ModelVersion]) -> Table:
    table = Table(title="Registered fraud models (newest first)")
    for column in ("version", "model", "AUC ROC", "AP", "CP@100", "trained from", ""):
        table.add_column(column, justify="right" if column in ("version",) else "left")
    for version in versions:
        metrics = version.metrics
        table.add_row(
            version.version,
            version.model,
            _metric(metrics.get("auc_roc")),
            _metric(metrics.get("average_precision")),
            _metric(metrics.get("card_precision_at_100")),
            version.tags.get("train_start", "?"),
            "[bold green]champion" if version.champion else "",
        )
    return table


def replay_table(report: ReplayReport) -> Table:
    from lakebed.stream.sink import TABLE

    table = Table(
        title=f"Stream replay · {report.days[0]} to {report.days[1]}", title_justify="left"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    p = report.latencies.percentile
    rows = [
        ("transactions scored", f"{report.transactions:,}"),
        ("chargebacks applied", f"{report.chargebacks:,}"),
        ("dead letters (bad messages)", f"{report.dead_letters:,}"),
        ("offered load", f"{report.offered_rate:,.0f} events/s"),
        ("throughput", f"{report.throughput:,.0f} events/s"),
        ("capacity (busy time)", f"{report.capacity:,.0f} events/s"),
        ("latency p50 / p99 / p99.9", f"{p(50):.2f} / {p(99):.2f} / {p(99.9):.2f} ms"),
        ("alerts", f"{report.alerts:,}"),
        ("alert precision (gold labels)", f"{report.precision:.1%}"),
        (
            "frauds alerted (recall)",
            f"{report.alert_frauds:,} of {report.frauds:,} ({report.recall:.1%})",
        ),
        ("model version", report.model_version),
        ("scored events landed in", f"{TABLE} ({report.landed:,})"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


@contextmanager
def stream_progress() -> Iterator[Callable[[int, int], None]]:
    """A bar over the replayed messages (transactions, chargebacks and dead letters)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("streaming", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield on_progress


@dataclass
class IndexProgress:
    total: Callable[[int], None]
    advance: Callable[[int], None]


@contextmanager
def index_progress() -> Iterator[IndexProgress]:
    """A bar over the chunks to embed and store (unchanged documents are not counted)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("indexing", total=None)
        yield IndexProgress(
            lambda n: progress.update(task, total=n),
            lambda n: progress.advance(task, n),
        )


def index_table(report: IndexReport, chunks_in_store: int) -> Table:
    table = Table(title="RAG index", show_header=False)
    table.add_column("what", style="cyan")
    table.add_column("value", justify="right")
    table.add_row("documents", str(report.documents))
    table.add_row("added", str(len(report.added)))
    table.add_row("changed", str(len(report.changed)))
    table.add_row("repaired (interrupted run)", str(len(report.repaired)))
    table.add_row("removed", str(len(report.removed)))
    table.add_row("unchanged (skipped)", str(report.unchanged))
    table.add_row("unreadable (skipped)", str(len(report.failures)))
    table.add_row("chunks written", str(report.chunks_written))
    table.add_row("chunks embedded (not cached)", str(report.chunks_embedded))
    table.add_row("chunks in the index", str(chunks_in_store))
    rate = report.chunks_written / report.seconds if report.seconds else 0.0
    table.add_row("time", f"{report.seconds:.1f} s ({rate:.0f} chunks/s)")
    return table


def answer_panel(answer: Answer, show_passages: bool) -> Group:
    parts: list[RenderableType] = [
        Panel(answer.text, title=answer.question, title_align="left", expand=False)
    ]
    if answer.citations:
        cites = Table(show_header=True, header_style="bold", box=None)
        cites.add_column("#", justify="right")
        cites.add_column("document")
        cites.add_column("section")
        cites.add_column("link", style="dim")
        for c in answer.citations:
            cites.add_row(f"[{c.number}]", c.title, c.section, c.link)
        parts.append(cites)
    if show_passages:
        passages = Table(title="retrieved passages", show_lines=True)
        passages.add_column("rank", justify="right")
        passages.add_column("section")
        passages.add_column("text")
        for rank, hit in enumerate(answer.passages, start=1):
            passages.add_row(str(rank), f"{hit.chunk.doc_id}\n{hit.chunk.heading}", hit.chunk.text)
        parts.append(passages)
    return Group(*parts)


def rag_eval_table(report: EvalReport) -> Table:
    from lakebed.rag.evaluation import RECALL_AT

    table = Table(
        title=f"Retrieval on {report.questions} questions (R@k: recall of sections in the top k)"
    )
    table.add_column("mode", style="cyan")
    for k in RECALL_AT:
        table.add_column(f"R@{k}", justify="right")
    table.add_column("MRR", justify="right")
    table.add_column("nDCG@10", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    best = max(m.ndcg for m in report.modes)
    for m in report.modes:
        style = "bold green" if m.ndcg == best else ""
        table.add_row(
            m.mode,
            *(f"{m.recall[k]:.3f}" for k in RECALL_AT),
            f"{m.mrr:.3f}",
            f"[{style}]{m.ndcg:.3f}[/]" if style else f"{m.ndcg:.3f}",
            f"{m.p50_ms:.1f}",
            f"{m.p99_ms:.1f}",
        )
    return table
