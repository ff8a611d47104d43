"""The dashboard served for real, in a real browser: the API and Streamlit started as
``lakebed dashboard`` starts them, on free ports, and Debian's Chromium driven by
Playwright (the system browser: nothing is downloaded).

Three dashboards: one over a data home with everything in it (the default world's
lakehouse and trained models, the indexed documents; the alerts test runs the stream), one over an
empty data home, and one whose API is down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from lakebed.config import Settings
from lakebed.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, IDLE
from lakebed.dashboard.launcher import Dashboard, start
from lakebed.rag.service import RagService
from lakebed.services import free_ports
from tests.conftest import Trained

SCREENSHOTS = Path(__file__).resolve().parents[2] / "tests-output" / "screenshots"


def serve(settings: Settings, api_url: str | None = None) -> Dashboard:
    api_port = free_ports(17100, 1)
    board_port = free_ports(17200, 1)
    configured = settings.model_copy(
        update={
            "serve": settings.serve.model_copy(update={"port": api_port}),
            "dashboard": settings.dashboard.model_copy(
                update={"port": board_port, "api_url": api_url}
            ),
        }
    )
    return start(configured)


@pytest.fixture(scope="session")
def full_home(trained: Trained) -> Settings:
    """The default world's lakehouse and models, plus the indexed documents."""
    service = RagService.open(trained.settings)
    try:
        service.index()
    finally:
        service.close()
    return trained.settings


@pytest.fixture(scope="module")
def dashboard(full_home: Settings) -> Iterator[Dashboard]:
    board = serve(full_home)
    yield board
    board.stop()


@pytest.fixture(scope="module")
def empty_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    board = serve(Settings(data_home=tmp_path_factory.mktemp("empty-home")))
    yield board
    board.stop()


@pytest.fixture(scope="module")
def api_down_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    closed = free_ports(17300, 1)
    home = tmp_path_factory.mktemp("no-api")
    board = serve(Settings(data_home=home), api_url=f"http://127.0.0.1:{closed}")
    yield board
    board.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (bash deploy/packages.sh)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    yield opened
    context.close()


def open_page(page: Page, board: Dashboard, path: str = "") -> None:
    """Load a page and wait until its script ran and nothing is stale."""
    page.goto(f"{board.url}/{path}")
    page.wait_for_selector(IDLE, timeout=60_000)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=30_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def no_tracebacks(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert "Traceback" not in page.content()


def plotted_points(page: Page, key: str, timeout_ms: float = 30_000) -> int:
    """Data points of the Plotly chart ``key`` as drawn in the page; 0 if it draws none
    within the timeout. Counted from ``_fullData``, the traces as Plotly drew them (the
    raw ones may hold base64 arrays), once Plotly has laid them out."""
    chart = page.locator(f".st-key-{key} .js-plotly-plot")
    expect(chart).to_have_count(1, timeout=timeout_ms)
    try:
        counted = page.wait_for_function(
            """el => {
                if (!el || !el._fullData) return false;
                const n = el._fullData.reduce(
                    (sum, t) => sum + (t.visible === false ? 0 : t._length || 0), 0);
                return Number.isFinite(n) && n > 0 ? n : false;
            }""",
            arg=chart.element_handle(),
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError:
        return 0
    return int(counted.json_value())


def screenshot(page: Page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its main block, so the viewport grows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stAppViewContainer', 'stMainBlockContainer']"
        ".map(id => document.querySelector(`[data-testid=${id}]`)?.scrollHeight || 0))"
    )
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 80)})
    page.wait_for_timeout(500)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


def wait_for_text(page: Page, pattern: str, timeout_s: float = 30) -> str:
    """The page's text once ``pattern`` is in it."""
    deadline = time.monotonic() + timeout_s
    body = ""
    while time.monotonic() < deadline:
        body = page.inner_text("body")
        if re.search(pattern, body):
            return body
        page.wait_for_timeout(300)
    raise AssertionError(
        f"{pattern!r} did not appear within {timeout_s:.0f} s; the page said: {body[:1500]!r}"
    )
