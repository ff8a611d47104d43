"""Benchmark: the RAG service's ingestion rate, query latency, index size and retrieval quality.

Why: the issue sets goals of >= 200 chunks/s ingestion on CPU, query latency without
generation p50 < 50 ms and p99 < 200 ms, and hybrid retrieval beating BM25-only and
dense-only on nDCG@10. Measured here, on both stores (LanceDB embedded, a real Weaviate
server started by this script):

* ingestion: the shipped corpus copied ``--copies`` times (each copy's text made unique, so
  nothing is served from the embedding cache), loaded, chunked, embedded and written from
  scratch; the baseline in the same run is the same work in float32 instead of the
  bfloat16 the CPU supports, and a re-run over the unchanged corpus (incremental no-op);
* query latency: every QA question, ``--rounds`` times, per retrieval mode (the query's
  embedding included), then the extractive answer on top;
* quality: recall@k, MRR, nDCG@10 per mode and citation precision on the shipped QA set.

Run ``python benchmarks/bench_rag.py`` (about 5 minutes on 2 cores). Writes
``rag_latency.png`` beside the results.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from lakebed.config import Settings
from lakebed.rag.embeddings import MiniLMEmbeddings
from lakebed.rag.evaluation import RECALL_AT, evaluate, load_questions
from lakebed.rag.index import SHIPPED_CORPUS, index_corpus
from lakebed.rag.lance_store import LanceStore
from lakebed.rag.retrieval import Retriever
from lakebed.rag.service import RagService
from lakebed.rag.store import SEARCH_MODES, VectorStore
from lakebed.rag.weaviate_store import WeaviateStore
from lakebed.services import WeaviateServer

HERE = Path(__file__).resolve().parent


def scaled_corpus(target: Path, copies: int) -> Path:
    """``copies`` of the shipped corpus; Markdown and text copies get a distinct line so
    their chunks differ (binary formats are identical copies, embedded once per copy
    because the embedding cache is off for the ingestion runs)."""
    for n in range(copies):
        shutil.copytree(SHIPPED_CORPUS, target / f"copy{n:02d}", dirs_exist_ok=True)
        for path in (target / f"copy{n:02d}").rglob("*"):
            if path.suffix in {".md", ".txt"}:
                path.write_text(path.read_text() + f"\n\nCopy {n} of the corpus.\n")
    # The shipped rules, each pattern moved under the copies, so access filters apply as
    # they do on the real corpus.
    rules = tomllib.loads((SHIPPED_CORPUS / "access.toml").read_text())
    lines = [f"default = {json.dumps(rules['default'])}"]
    for rule in rules.get("rule", []):
        lines += ["[[rule]]", f'pattern = "copy*/{rule["pattern"]}"']
        lines += [f"groups = {json.dumps(rule['groups'])}"]
    (target / "access.toml").write_text("\n".join(lines) + "\n")
    return target


def dir_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ingest(settings: Settings, store: VectorStore, precision: str) -> dict[str, float]:
    model = MiniLMEmbeddings(settings.rag.embedding_batch, precision=precision)  # type: ignore[arg-type]
    model.warm_up()
    report = index_corpus(settings, store, model, None, with_catalog=False)
    again = index_corpus(settings, store, model, None, with_catalog=False)
    return {
        "chunks": report.chunks_written,
        "seconds": report.seconds,
        "rate": report.chunks_written / report.seconds,
        "embed_rate": report.chunks_written / report.embed_seconds,
        "noop_seconds": again.seconds,
    }


def latencies(retriever: Retriever, service: RagService, rounds: int) -> dict[str, list[float]]:
    questions = load_questions()
    out: dict[str, list[float]] = {mode: [] for mode in SEARCH_MODES}
    out["answer"] = []
    for _ in range(rounds):
        for q in questions:
            for mode in SEARCH_MODES:
                started = time.perf_counter()
                retriever.search(q.question, q.groups, mode)
                out[mode].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            service.answerer.ask(q.question, q.groups)
            out["answer"].append((time.perf_counter() - started) * 1000)
    return out


def plot(results: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), sharey=True)
    for ax, (store, series) in zip(np.atleast_1d(axes), results.items(), strict=True):
        bins = np.logspace(0, np.log10(max(max(v) for v in series.values()) * 1.2), 40)
        for name, values in series.items():
            ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.set_title(f"{store}: query latency per mode, and answers")
        ax.axvline(50, color="grey", linestyle=":", linewidth=1)
        ax.axvline(200, color="grey", linestyle="--", linewidth=1)
        ax.legend()
    axes_list = np.atleast_1d(axes)
    axes_list[0].set_ylabel("queries")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the corpus to ingest")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the QA set")
    parser.add_argument("--http-port", type=int, default=18680, help="Weaviate's REST port")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.node()}")
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        root = Path(tmp)
        server = WeaviateServer(root / "weaviate", args.http_port, args.http_port + 1)
        server.up()
        try:
            run(root, server, args.copies, args.rounds)
        finally:
            server.down()


def run(root: Path, server: WeaviateServer, copies: int, rounds: int) -> None:
    corpus = scaled_corpus(root / "corpus", copies)
    print(f"\n== ingestion: the corpus x{copies}, from scratch, no embedding cache")
    rows = []
    for store_name in ("lance", "weaviate"):
        for precision in ("bfloat16", "float32"):
            settings = Settings(data_home=root / f"ingest-{store_name}-{precision}")
            settings.rag.corpus = corpus
            store = (
                LanceStore.open(settings.data_home / "lance", "chunks")
                if store_name == "lance"
                else WeaviateStore.connect(server.url, f"Bench{precision}", server.grpc_port)
            )
            result = ingest(settings, store, precision)
            rows.append((store_name, precision, result))
            if isinstance(store, WeaviateStore):
                store.drop()
            store.close()
    print(f"{'store':9} {'precision':9} {'chunks':>7} {'s':>7} {'chunks/s':>9} "
          f"{'embed/s':>8} {'no-op s':>8}")  # fmt: skip
    for store_name, precision, r in rows:
        print(
            f"{store_name:9} {precision:9} {r['chunks']:7.0f} {r['seconds']:7.1f} "
            f"{r['rate']:9.1f} {r['embed_rate']:8.1f} {r['noop_seconds']:8.2f}"
        )

    print("\n== query latency and quality: the shipped corpus and its QA set")
    series: dict[str, dict[str, list[float]]] = {}
    for store_name in ("lance", "weaviate"):
        settings = Settings(data_home=root / f"query-{store_name}")
        queried: VectorStore = (
            LanceStore.open(settings.data_home / "rag" / "lancedb", "chunks")
            if store_name == "lance"
            else WeaviateStore.connect(server.url, "BenchQuery", server.grpc_port)
        )
        service = RagService.open(settings, store=queried)
        service.index()
        service.model.warm_up()
        retriever = service.retriever
        latencies(retriever, service, 1)  # warm caches on both sides
        series[store_name] = latencies(retriever, service, rounds)
        size = service.store.size_bytes() or dir_size(server.home / "data")
        print(f"\n{store_name}: {service.store.count()} chunks, index on disk {size / 1e6:.1f} MB")
        print(f"{'':8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        for name, values in series[store_name].items():
            print(
                f"{name:8} {np.percentile(values, 50):7.1f} {np.percentile(values, 99):7.1f} "
                f"{max(values):7.1f}"
            )
        report = evaluate(retriever, service.answerer, load_questions())
        header = " ".join(f"R@{k:<4}" for k in RECALL_AT)
        print(f"{'mode':8} {header} {'MRR':>6} {'nDCG@10':>8}")
        for m in report.modes:
            recalls = " ".join(f"{m.recall[k]:6.3f}" for k in RECALL_AT)
            print(f"{m.mode:8} {recalls} {m.mrr:6.3f} {m.ndcg:8.3f}")
        print(
            f"answers found {report.answered:.0%}, "
            f"citation precision {report.citation_precision:.3f}"
        )
        if isinstance(queried, WeaviateStore):
            queried.drop()
        service.close()
    plot(series, HERE / "rag_latency.png")
    print(f"\nwrote {HERE / 'rag_latency.png'}")


if __name__ == "__main__":
    main()
