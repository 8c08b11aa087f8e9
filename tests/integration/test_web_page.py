"""The web page (docs/web.rst) in a real headless Chromium over a real stack: router, hub,
the sim, host and archive nodes and the HTTP bridge.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or CHROMIUM) and Playwright for Python
(``datasock[test]``); without them the tests skip, unless DATASOCK_REQUIRE_BROWSER=1 (CI).
DATASOCK_WEB_SCREENSHOTS=1 also writes the screenshots of docs/web.rst into docs/_static/.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import REPO, wait_until
from .http_helpers import start_bridge, start_http_node

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("DATASOCK_WEB_SCREENSHOTS") == "1"
STATIC = REPO / "docs" / "_static"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "playwright" if sync_playwright is None else None if Path(CHROMIUM).exists() else CHROMIUM
    if missing:
        if os.environ.get("DATASOCK_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} is missing (make test / .ci/run install it)")
        pytest.skip(f"{missing} is missing: apt-get install chromium; pip install 'datasock[test]'")
    return sync_playwright


@pytest.fixture(scope="module")
def site(shared_stack):
    """sim, host and archive (its sample archive, indexed in SQLite) and a bridge over them."""
    s = shared_stack
    s.datasock("sim", "node", "sim")
    s.datasock("host", "node", "host")
    scan = s.run_cli("scan", "--once", "--write-sample", timeout=180)
    assert scan.returncode == 0, scan.stderr
    s.datasock("archive", "node", "archive")
    start_http_node(s, "wide")      # ten 1 Hz fields over any range: dense enough to downsample
    bridge = start_bridge(s)
    wait_until(lambda: {"sim::thermometer_4k", "host::memory_percent", "wide::f1"} <= set(bridge.targets())
               and any(t.startswith("archive::") for t in bridge.targets()), 60, what="fields listed")
    return bridge


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """One tab with every console error and uncaught exception it saw."""

    def __init__(self, browser, base: str, **context):
        self.context = browser.new_context(accept_downloads=True, **context)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, fragment: str = "") -> None:
        """Load the page afresh (a new fragment alone would only be a hashchange)."""
        self.page.goto("about:blank")
        self.page.goto(self.base + "/" + fragment)
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)

    def info(self) -> list[dict]:
        return self.page.evaluate("window.datasock.info()")

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


@pytest.fixture
def tab(browser, site):
    t = Page(browser, site.url, viewport={"width": 1280, "height": 860})
    yield t
    t.close()


def test_the_page_lists_nodes_and_shows_live_sim_data_without_errors(tab, site):
    # a browser gets the page; Grafana and scripts still get the health answer at the same URL
    assert site.get("/", headers={"Accept": HTML}).headers["Content-Type"].startswith("text/html")
    assert site.get("/").json()["status"] == "ok"
    tab.open()
    for node in ("sim", "host", "archive"):
        tab.page.wait_for_selector(f"#nodes li[data-node='{node}']")
    # the first sight: the sim node's 4 K stage, live
    assert tab.info()[0]["targets"] == ["sim::thermometer_4k"]
    wait_until(lambda: tab.info()[0]["points"] > 0, 10, what="points drawn")
    status = tab.page.inner_text("#status")
    assert "connected" in status and "listed" in status and "archive" in status


def test_search_finds_a_field_across_nodes_and_adds_it_with_its_units(tab):
    tab.open("#from=now-15m&to=now&p=sim::thermometer_4k&live=0")
    tab.page.fill("#search", "*::therm*40*")      # a glob; plain text matches anywhere in node::field
    hit = tab.page.locator("#results li[data-target='sim::thermometer_40k']")
    hit.wait_for()
    wait_until(lambda: tab.page.locator("#results li[data-target]").count() == 1, 10, what="one hit")
    assert "cryostat 40 K stage temperature" in hit.inner_text() and "K" in hit.inner_text()
    hit.click()
    wait_until(lambda: tab.info()[0]["targets"] == ["sim::thermometer_4k", "sim::thermometer_40k"], 10,
               what="second series")
    assert "sim::thermometer_40k [K]" in tab.page.inner_text(".plot .title")
    assert "sim::thermometer_40k" in tab.page.evaluate("location.hash")
    # a field of another node, in a second plot
    tab.page.click("#add-plot")
    tab.page.fill("#search", "host::memory_p")
    tab.page.click("#results li[data-target='host::memory_percent']")
    wait_until(lambda: [p["targets"] for p in tab.info()][1:] == [["host::memory_percent"]], 10, what="plot 2")
    wait_until(lambda: tab.info()[1]["points"] > 0, 10, what="host points")


def test_a_plot_asks_for_as_many_points_as_it_is_wide(tab):
    with tab.page.expect_request(lambda r: r.url.endswith("/query")) as asked:
        tab.open("#from=now-6h&to=now&p=wide::f1&live=0")
    body = json.loads(asked.value.post_data)
    wait_until(lambda: tab.info()[0]["points"] > 0, 20, what="points")
    info = tab.info()[0]
    assert info["width"] == tab.page.evaluate("document.querySelector('.plot .chart').clientWidth")
    # 6 h of 1 Hz samples (21600) are brought down to the plot's width in pixels
    assert body["maxDataPoints"] == info["maxDataPoints"] == info["width"] > 500
    assert info["width"] / 2 < info["points"] <= info["width"]


def test_live_follow_appends_new_samples_within_3_s(tab):
    tab.open("#from=now-15m&to=now&p=sim::thermometer_4k&live=1")
    wait_until(lambda: tab.info()[0]["last"] is not None, 10, what="first points")
    queries = []
    tab.page.on("request", lambda r: r.url.endswith("/query") and queries.append(r))
    # the new points come over /api/live, appended to what is shown, with no /query. A page
    # that has just opened may still ask /query once more as its layout settles (its plot's
    # width); a sample that came with such an answer is not the one looked for: look again
    for _attempt in range(3):
        queries.clear()
        last, shown = tab.info()[0]["last"], tab.info()[0]["shown"]
        grown = wait_until(lambda: (lambda i: i if i["last"] > last else None)(tab.info()[0]), 3.0,
                           interval=0.1, what="a live sample")
        if not queries:
            break
    assert queries == [], "every live sample came with a /query"
    assert grown["shown"] > shown
    assert time.time() - grown["last"] < 5


def test_drag_zooms_and_re_queries_at_the_new_resolution(tab):
    tab.open("#from=now-6h&to=now&p=wide::f1&live=0")
    wait_until(lambda: tab.info()[0]["points"] > 0, 20, what="points")
    before = tab.info()[0]["scale"]
    box = tab.page.locator(".plot .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    with tab.page.expect_request(lambda r: r.url.endswith("/query")) as asked:
        tab.page.mouse.move(box["x"] + box["width"] * 0.25, y)
        tab.page.mouse.down()
        tab.page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
        tab.page.mouse.up()
    body = json.loads(asked.value.post_data)
    state = tab.page.evaluate("window.datasock.state")
    assert state["from"].isdigit() and state["to"].isdigit()      # an absolute range now
    span = (int(state["to"]) - int(state["from"])) / 1000
    assert 0.2 < span / (before[1] - before[0]) < 0.3
    assert body["maxDataPoints"] == tab.info()[0]["width"]
    wait_until(lambda: abs(tab.info()[0]["scale"][1] - tab.info()[0]["scale"][0] - span) < 1, 10,
               what="zoomed scale")
    # 90 min of 1 Hz is more than the width: again about one point per pixel, now each closer in time
    wait_until(lambda: tab.info()[0]["width"] / 2 < tab.info()[0]["points"] <= tab.info()[0]["width"], 10,
               what="points of the zoomed range")
    tab.page.click("#back")
    wait_until(lambda: tab.page.evaluate("window.datasock.state.from") == "now-6h", 10, what="unzoom")


def test_a_url_restores_the_view(tab, site):
    archive_field = next(t for t in site.targets() if t.startswith("archive::"))
    fragment = (f"#from=now-24h&to=now&p=sim::psu_voltage,sim::psu_current&p={archive_field}&live=0&sel=1")
    tab.open(fragment)
    assert [p["targets"] for p in tab.info()] == [["sim::psu_voltage", "sim::psu_current"], [archive_field]]
    assert tab.page.input_value("#range") == "now-24h"
    assert not tab.page.is_checked("#live")
    wait_until(lambda: all(p["points"] > 0 for p in tab.info()), 20, what="both plots drawn")
    assert "[V]" in tab.page.inner_text(".plot .title") and "[A]" in tab.page.inner_text(".plot .title")
    # and an absolute range
    end = int(time.time() * 1000) - 3_600_000
    tab.open(f"#from={end - 600_000}&to={end}&p=wide::f3&live=0")
    assert tab.page.input_value("#range") == "abs"
    wait_until(lambda: 300 < tab.info()[0]["points"] <= 600, 10, what="the samples of those 10 minutes")
    scale = wait_until(lambda: (lambda s: s if s and abs(s[0] - (end - 600_000) / 1000) < 1 else None)(
        tab.info()[0]["scale"]), 10, what="absolute scale")
    assert abs(scale[1] - end / 1000) < 1


def test_csv_download_of_what_is_shown(tab):
    tab.open("#from=now-15m&to=now&p=sim::thermometer_4k,sim::psu_mode&live=0")
    shown = wait_until(lambda: (lambda n: n if n >= 5 else None)(tab.info()[0]["points"]), 20, what="points")
    with tab.page.expect_download() as download:
        tab.page.click(".plot .csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows[0] == ["time", "thermometer_4k", "psu_mode"]
    # the shown range (it only grew since) at the plot's resolution: every shown sample is in it
    assert sum(1 for r in rows[1:] if r[1]) >= shown
    assert {r[2] for r in rows[1:] if r[2]} <= {"CV", "CC", "OFF"}
    assert download.value.suggested_filename.startswith("sim-")


def test_with_token_auth_the_page_asks_once_and_keeps_the_token_for_the_tab(browser, shared_stack, site):
    secured = start_bridge(shared_stack, wait_healthy=False, DATASOCK_HTTP_AUTH="token",
                           DATASOCK_HTTP_SECRET="web-page-token")
    assert secured.get("/").status_code == 401 and secured.get("/api/status").status_code == 401
    tab = Page(browser, secured.url, viewport={"width": 1280, "height": 860})
    tab.page.goto(secured.url + "/")
    tab.page.wait_for_selector("#login[open]")
    tab.page.fill("#login-secret", "web-page-token")
    tab.page.click("#login button[type=submit]")
    tab.page.wait_for_selector("#nodes li[data-node='sim']", timeout=30_000)
    wait_until(lambda: tab.info()[0]["points"] > 0, 20, what="points with the token")
    assert tab.page.evaluate("sessionStorage.getItem('datasock.auth')") == "Bearer web-page-token"
    tab.page.reload()
    tab.page.wait_for_selector("body[data-ready='1']")
    assert not tab.page.is_visible("#login")
    # the 401s before the token was given are console errors of the browser's own; nothing else
    tab.errors = [e for e in tab.errors if "401" not in e]
    tab.close()
    secured.proc.stop()


@pytest.mark.skipif(not SCREENSHOTS, reason="DATASOCK_WEB_SCREENSHOTS=1 writes the docs' screenshots")
def test_screenshots_for_the_docs(browser, site):
    channels = [t for t in site.targets() if t.startswith("archive::") and t.endswith("_T")][:3]
    assert channels
    main = Page(browser, site.url, viewport={"width": 1280, "height": 860}, color_scheme="light")
    main.open(f"#from=now-6h&to=now&p={','.join(channels)}&p=sim::psu_voltage,sim::psu_current&live=1")
    main.page.fill("#search", "thermometer")
    main.page.wait_for_selector("#results li[data-target='sim::thermometer_4k']")
    main.page.wait_for_timeout(1500)
    main.page.screenshot(path=str(STATIC / "web-main.png"))
    main.close()
    dark = Page(browser, site.url, viewport={"width": 1280, "height": 860}, color_scheme="dark")
    dark.open(f"#from=now-24h&to=now&p={','.join(channels)}&live=0")
    dark.page.fill("#search", "psu")
    dark.page.wait_for_selector("#results li[data-target='sim::psu_voltage']")
    dark.page.wait_for_timeout(1000)
    dark.page.screenshot(path=str(STATIC / "web-dark.png"))
    dark.close()
    phone = Page(browser, site.url, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                 is_mobile=True, has_touch=True)
    phone.open("#from=now-15m&to=now&p=sim::thermometer_4k&p=sim::pressure_main&live=1")
    phone.page.wait_for_timeout(3000)
    phone.page.screenshot(path=str(STATIC / "web-phone.png"))
    phone.close()
