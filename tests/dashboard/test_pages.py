"""End to end, in Chromium: every page of the dashboard over a full data home, an empty
one and a dead API. Screenshots of each page land in tests-output/screenshots."""

from __future__ import annotations

import re

import orjson
from playwright.sync_api import Page, expect

from lakebed.config import Settings
from lakebed.dashboard.launcher import Dashboard
from lakebed.fraud.features import FEATURE_NAMES
from lakebed.stream.activity import Activity
from lakebed.stream.engine import StreamEngine, registry_loader
from lakebed.stream.memory_log import MemoryLog
from lakebed.stream.memory_store import MemoryStore
from lakebed.stream.topics import TRANSACTIONS
from lakebed.world.feed import transactions_file
from tests.dashboard.conftest import (
    no_tracebacks,
    open_page,
    plotted_points,
    screenshot,
    wait_for_text,
)


def test_lakehouse_page_charts_layers_quarantine_run_and_kpis(
    page: Page, dashboard: Dashboard
) -> None:
    open_page(page, dashboard)
    expect(page.get_by_role("heading", name="Lakehouse")).to_be_visible()
    for key in ("rows_per_day", "quarantine_by_rule", "kpi_volume", "kpi_fraud_rate",
                "kpi_scenario", "kpi_category"):  # fmt: skip
        assert plotted_points(page, key) > 0, key
    # 183 days of the default world on the volume chart, one bar a day
    assert plotted_points(page, "kpi_volume") == 183
    body = page.inner_text("body")
    assert "Last pipeline run" in body
    assert re.search(r"dbt tests\s+of the build finished .*\d+ pass", body)
    expect(
        page.get_by_text(re.compile(r"transactions · invalid_json · [\d,]+ rows"))
    ).to_be_visible()
    no_tracebacks(page)
    screenshot(page, "lakehouse")


def test_sql_editor_returns_rows_and_shows_a_refusal(page: Page, dashboard: Dashboard) -> None:
    open_page(page, dashboard)
    editor = page.locator(".st-key-sql_text textarea")
    editor.fill("SELECT merchant_category, count(*) AS n FROM gold.dim_terminal GROUP BY 1")
    page.get_by_role("button", name="Run query").click()
    expect(page.get_by_text(re.compile(r"^\d+ rows in \d+ ms"))).to_be_visible()
    grid = page.locator(".st-key-sql_result table[role=grid]")
    rows = int(grid.get_attribute("aria-rowcount") or 0) - 1  # less the header row
    shown = int(page.get_by_text(re.compile(r"^\d+ rows in")).inner_text().split()[0])
    assert rows == shown > 1

    editor.fill("DROP TABLE gold.dim_terminal")
    page.get_by_role("button", name="Run query").click()
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("only SELECT queries are served, not DROP")
    no_tracebacks(page)


def test_model_page_shows_versions_beside_the_handbook_and_curves(
    page: Page, dashboard: Dashboard
) -> None:
    open_page(page, dashboard, "models")
    # Waited for, not read at once: in one clean-clone run the body read right after
    # the page went idle had no champion yet (rerun, it passed); a page that never shows
    # it fails with what it said instead.
    body = wait_for_text(page, r"v\d+ · ")
    champion = re.search(r"v(\d+) · ", body)
    assert champion, "the champion's version is shown"
    assert plotted_points(page, "compare") > 0
    # The handbook's results are drawn beside ours (axis labels are text in the SVG).
    compared = page.locator(".st-key-compare").inner_text()
    assert "XGBoost, model selection" in compared
    assert f"v{champion.group(1)}" in compared
    assert plotted_points(page, "roc") > 10
    assert plotted_points(page, "precision_recall") > 10
    assert plotted_points(page, "importance") == len(FEATURE_NAMES)  # a bar per feature
    no_tracebacks(page)
    screenshot(page, "models")


def _stream_one_transaction(settings: Settings) -> str:
    """Score one real transaction of the world through the stream engine (local profile:
    in-process log and store), alerting on everything; returns its transaction id."""
    line = next(
        raw
        for raw in (settings.data_home / transactions_file(settings.world.start_date))
        .read_bytes()
        .splitlines()
        if raw.startswith(b"{") and b"transaction_id" in raw
    )
    transaction_id = str(orjson.loads(line)["transaction_id"])
    alerting = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"alert_threshold": 1e-9})}
    )
    log, store, activity = MemoryLog(), MemoryStore(), Activity.open(settings)
    try:
        engine = StreamEngine(log, store, registry_loader(settings), alerting, activity=activity)
        with log.producer() as producer:
            producer.send(TRANSACTIONS, b"card", line)
            producer.flush()
        stats = engine.run(idle_exit_s=1.0)
        assert stats.transactions == 1
        assert stats.alerts == 1
    finally:
        activity.close()
        store.close()
        log.close()
    return transaction_id


def test_live_alerts_page_shows_an_alert_produced_while_it_is_open(
    page: Page, dashboard: Dashboard, full_home: Settings
) -> None:
    open_page(page, dashboard, "alerts")
    expect(page.get_by_role("heading", name="Live alerts")).to_be_visible()
    transaction_id = _stream_one_transaction(full_home)
    assert transaction_id not in page.inner_text("body")
    # No reload: the page refreshes itself.
    wait_for_text(page, re.escape(transaction_id), timeout_s=30)
    row = page.get_by_test_id("stTableStyledTable").locator("tr", has_text=transaction_id)
    expect(row).to_contain_text(re.compile(r"approve|review|block"))
    assert plotted_points(page, "throughput") > 0
    assert plotted_points(page, "latency_histogram") > 0
    no_tracebacks(page)
    screenshot(page, "alerts")


def _ask(page: Page, board: Dashboard, user: str, question: str) -> list[str]:
    """Ask as ``user``; returns the cited documents' ids."""
    open_page(page, board, "ask")
    chooser = page.get_by_test_id("stSelectbox").get_by_role("combobox")
    chooser.focus()
    chooser.press("ArrowDown")
    page.get_by_role("option", name=re.compile(rf"^{user} \(")).click()
    box = page.get_by_test_id("stTextInput").get_by_role("textbox", name="Question")
    box.fill(question)
    page.get_by_test_id("stCheckbox").get_by_text("show passages").click()
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_text(re.compile(r"(extractive|none) answer in \d+ ms"))).to_be_visible(
        timeout=60_000
    )
    no_tracebacks(page)
    sources = page.locator("a[href*='document?doc=']")
    return [
        re.sub(r"^.*doc=([^&]+).*$", r"\1", sources.nth(i).get_attribute("href") or "").replace(
            "%2F", "/"
        )
        for i in range(sources.count())
    ]


def test_ask_cites_what_each_user_may_read_and_citations_open_the_section(
    page: Page, dashboard: Dashboard
) -> None:
    question = "How do I replay a Kafka topic from an earlier offset?"
    engineer = _ask(page, dashboard, "bob", question)
    assert "runbooks/replay-kafka-topic.md" in engineer
    screenshot(page, "ask")
    # The citation opens the reader at the cited section (in a new tab), as the same user.
    with page.context.expect_page() as opened:
        page.locator("a[href*='replay-kafka-topic.md']").first.click()
    reader = opened.value
    reader.wait_for_selector(".st-key-cited_section", timeout=60_000)
    expect(reader.locator(".st-key-cited_section")).to_contain_text("Cited section")
    expect(reader.get_by_text("opened as bob")).to_be_visible()
    no_tracebacks(reader)
    screenshot(reader, "document")
    reader.close()

    newcomer = _ask(page, dashboard, "dave", question)
    assert "runbooks/replay-kafka-topic.md" not in newcomer
    assert set(newcomer) != set(engineer)


def test_a_forbidden_document_reads_as_not_found(page: Page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "document?doc=runbooks/replay-kafka-topic.md&user=dave")
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("no document")
    assert "Cited section" not in page.inner_text("body")
    no_tracebacks(page)


def test_every_page_explains_an_empty_data_home(page: Page, empty_dashboard: Dashboard) -> None:
    expected = {
        "": "the lakehouse is empty: run lakebed run",
        "models": "no model is trained yet",
        "alerts": "the stream engine has not run yet",
        "document": "Open a citation on the Ask page",
    }
    for path, words in expected.items():
        open_page(page, empty_dashboard, path)
        expect(page.get_by_text(words, exact=False).first).to_be_visible()
        no_tracebacks(page)
    # Asking before anything is indexed says what to run.
    open_page(page, empty_dashboard, "ask")
    page.get_by_test_id("stTextInput").get_by_role("textbox", name="Question").fill("hello?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_text("run lakebed index first", exact=False)).to_be_visible(timeout=60_000)
    no_tracebacks(page)


def test_a_dead_api_is_a_message_on_every_page(page: Page, api_down_dashboard: Dashboard) -> None:
    for path in ("", "models", "alerts", "ask", "document?doc=x.md&user=bob"):
        open_page(page, api_down_dashboard, path)
        expect(page.get_by_text("is not answering").first).to_be_visible()
        no_tracebacks(page)
