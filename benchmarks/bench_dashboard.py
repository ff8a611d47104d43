"""Benchmark: the dashboard's start-up and each page's first render in a real browser.

Why: the dashboard issue asks for the app's start-up and every page's first render to be
measured, not asserted in timed tests. The baseline in the same run is what the page
waits on: the API calls behind it, timed directly with httpx. The difference is what
Streamlit, Plotly and the browser add.

Over an existing data home (``make demo`` builds one; default ``lakebed-data``):

* start-up: ``lakebed dashboard`` as it starts itself — the API until ``/health`` answers,
  then Streamlit until ``/_stcore/health`` answers;
* first render, cold: each page opened once in a new browser context, from navigation to
  the page's last chart drawn (or its last element, for pages without charts);
* warm: the same page opened again (Streamlit has imported everything; the API's caches
  are warm);
* API: the page's calls made directly, best of 3.

Run ``python benchmarks/bench_dashboard.py [--data-home lakebed-data]``; needs Debian's
chromium (``bash deploy/packages.sh``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from lakebed.config import Settings
from lakebed.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, IDLE
from lakebed.dashboard.launcher import start
from lakebed.services import free_ports

# page path -> (the chart that is drawn last, or a text that shows the page is complete)
PAGES: dict[str, tuple[str, str]] = {
    "": ("kpi_category", "SQL over silver and gold"),
    "models": ("importance", "Curves and importance"),
    "alerts": ("latency_histogram", "Latest alerts"),
    "ask": ("", "Ask as"),
}


def api_calls(base: str) -> dict[str, Callable[[httpx.Client], object]]:
    kpis = "SELECT event_date, sum(transactions) FROM gold.fraud_kpis_daily GROUP BY 1"

    def lakehouse(http: httpx.Client) -> object:
        http.get("/lakehouse/status")
        return [http.post("/sql", json={"sql": kpis}) for _ in range(2)]

    def models(http: httpx.Client) -> object:
        champion = http.get("/models").json().get("champion") or "1"
        return http.get(f"/models/{champion}/evaluation")

    def alerts(http: httpx.Client) -> object:
        http.get("/stream/activity", params={"minutes": 60, "bucket_seconds": 30})
        return http.get("/stream/alerts", params={"limit": 50})

    def ask(http: httpx.Client) -> object:
        return http.get("/users")

    return {"": lakehouse, "models": models, "alerts": alerts, "ask": ask}


def render(page: Page, url: str, chart: str, text: str) -> float:
    began = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=120_000)
    if chart:
        page.wait_for_function(
            "key => { const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
            " return el && el._fullLayout !== undefined; }",
            arg=chart,
            timeout=120_000,
        )
    page.get_by_text(text).first.wait_for(timeout=120_000)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, default=Path("lakebed-data"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    needed = ["lakehouse/runs.jsonl", "mlflow/mlflow.db", "stream/activity.db", "rag/lancedb"]
    missing = [name for name in needed if not (args.data_home / name).exists()]
    if missing:
        raise SystemExit(f"{args.data_home} lacks {', '.join(missing)}: run `make demo` first")
    base = Settings(data_home=args.data_home)
    settings = base.model_copy(
        update={
            "serve": base.serve.model_copy(update={"port": free_ports(18600)}),
            "dashboard": base.dashboard.model_copy(update={"port": free_ports(18650)}),
        }
    )
    began = time.perf_counter()
    board = start(settings)
    started = time.perf_counter() - began
    try:
        api = {}
        with httpx.Client(base_url=board.api_url, timeout=120) as http:
            for path, call in api_calls(board.api_url).items():
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    call(http)
                    times.append(time.perf_counter() - t)
                api[path] = min(times)
            recent = http.get("/stream/activity", params={"minutes": 60}).json()
        pages = dict(PAGES)
        if not recent["transactions"]:  # the page draws no chart without recent activity
            pages["alerts"] = ("", "Latest alerts")
        cold, warm = {}, {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            for path, (chart, text) in pages.items():
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                cold[path] = render(page, f"{board.url}/{path}", chart, text)
                again = [
                    render(page, f"{board.url}/{path}", chart, text) for _ in range(args.rounds)
                ]
                warm[path] = statistics.median(again)
                context.close()
            browser.close()
    finally:
        board.stop()
    print(f"machine: {platform.processor() or platform.machine()}, data home {args.data_home}")
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in board.startup_s.items())
    print(f"start-up until both answer: {started:.1f} s ({parts})")
    print(f"{'page':<10} {'API calls':>10} {'first render':>13} {'warm render':>12}")
    for path in pages:
        name = (path or "lakehouse") + ("" if pages[path][0] else " (no chart)")
        print(f"{name:<10} {api[path] * 1000:>8.0f} ms {cold[path]:>11.2f} s {warm[path]:>10.2f} s")


if __name__ == "__main__":
    main()
