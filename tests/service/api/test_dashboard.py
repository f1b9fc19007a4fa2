"""The dashboard: its files are served (and open without the API key), and in headless Chromium against
a real server the page loads with no console errors, a POSTed observation appears on the chart, and the
truncation card shows the advisor's and the guards' values and resets the learning rate.

The browser test needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (its
driver only: no browser is downloaded). Without them it is skipped, except in CI (``CI`` set), where it
fails instead. Its screenshot is saved as ``dashboard.png`` in ``$TEST_ARTIFACTS_DIR`` when that is
set, else in the test's pytest tmp dir (the path is printed).
"""

from __future__ import annotations

import datetime
import itertools
import math
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from docs.make_tour import CHROMIUM_ARGS  # the flags a closed network needs (see docs/make_tour.py)
from tbptt_online.client import Client
from tbptt_online.client.errors import Unprocessable
from tbptt_service.api.routes.dashboard import STATIC_DIR

from ..conftest import ServerProcess
from ..live_server import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
T0 = 1_709_251_200  # 2024-03-01T00:00:00Z


# -- the files --------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_the_page_and_every_file_it_references_are_served(client_for) -> None:
    async with client_for() as client:
        page = await client.get("/")
        html = page.text
        referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        files = {path: await client.get(path) for path in referenced}
        missing = await client.get("/static/nope.js")
        escape = await client.get("/static/..%2Fapp.py")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert sorted(referenced) == ["/static/chart.js", "/static/dashboard.css", "/static/dashboard.js"]
    for path, response in files.items():
        assert response.status_code == 200, path
        assert response.content == (STATIC_DIR / Path(path).name).read_bytes()
    assert files["/static/chart.js"].headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404 and missing.json() == {"detail": "static file 'nope.js' does not exist"}
    assert escape.status_code == 404


@pytest.mark.anyio
async def test_the_page_opens_without_the_api_key_but_its_data_does_not(client_for) -> None:
    async with client_for(api_key="s3cret") as client:
        page = await client.get("/")
        script = await client.get("/static/dashboard.js")
        data = await client.get("/v1/models")
        with_key = await client.get("/v1/models", headers={"authorization": "Bearer s3cret"})
    assert (page.status_code, script.status_code) == (200, 200)
    assert (data.status_code, with_key.status_code) == (401, 200)


# -- in a real browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]'); CI requires it")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI must install it (apt-get install -y chromium)")
        pytest.skip("no chromium on this machine (apt-get install -y chromium); CI requires it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("dashboard-server")) as server:
        yield server


def artifact_path(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "dashboard.png"


def test_a_posted_observation_appears_on_the_chart_with_no_console_errors(
    browser, server: ServerProcess, tmp_path: Path
) -> None:
    with Client(server.url) as client:
        client.observe_many("default", [("sensor-1", 20 + 5 * math.sin(i / 4), T0 + 60 * i) for i in range(60)])
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.add_init_script("localStorage.setItem('tbptt.interval', '0.5')")  # poll every half second
    try:
        page.goto(f"{server.url}/#model=default&series=sensor-1")
        page.wait_for_selector('#chart svg[data-last-step="60"]', timeout=15_000)
        assert page.locator("#chart circle.observed-dot").count() == 60
        assert page.locator("#series li.selected").inner_text() == "sensor-1"
        assert page.locator("#forecast-table tbody tr").count() == 24  # the default horizon

        with Client(server.url) as client:
            posted = client.observe("default", "sensor-1", 31.25, timestamp=T0 + 60 * 60)
        page.wait_for_selector('#chart circle[data-step="61"][data-value="31.25"]', timeout=15_000)
        assert posted.step == 61
        assert page.locator("#chart svg").get_attribute("data-last-value") == "31.25"
        assert page.locator("#accuracy").inner_text().split("\n")[:2] == ["values", "61"]
        with Client(server.url) as client:
            stats = client.series_stats("default", "sensor-1")
        outliers = stats.outliers
        assert outliers is not None and _terms(page, "accuracy")["outliers"] == str(outliers)
        # the coverage at half the calibrated horizon (12), at it and at the far ones (24, 48: none scored yet)
        by_horizon = {c.horizon: c for c in stats.coverage_by_horizon}
        assert sorted(by_horizon) == [*range(1, 13), 24, 48] and by_horizon[12].scored > 0
        ahead = " · ".join(
            f"h{h} " + ("–" if by_horizon[h].coverage is None else f"{100 * by_horizon[h].coverage:.1f}%")
            for h in (6, 12, 24, 48)
        )
        assert _terms(page, "accuracy")["coverage ahead"] == ahead
        assert _terms(page, "accuracy")["cadence"] == "60 s"  # values a minute apart
        # the ratio over the values shown (the page's 200 most recent: all 61 here) beside the whole history's
        shown = httpx.get(f"{server.url}/v1/models/default/series/sensor-1/recent", params={"limit": 200}).json()
        points = shown["observations"]
        pairs = [(o["value"], o["forecast_made"]["mean"], b["value"]) for b, o in itertools.pairwise(points)]
        pairs = [p for p in pairs if None not in p]
        expected = sum(abs(y - f) for y, f, _ in pairs) / sum(abs(y - last) for y, _, last in pairs)
        recent_terms = {t: v for t, v in _terms(page, "accuracy").items() if t.startswith("MAE / naive, last")}
        assert recent_terms == {f"MAE / naive, last {len(pairs)}": f"{expected:.3f}"}
        first_row = page.locator("#forecast-table tbody tr").first.locator("td")
        due = datetime.datetime.fromtimestamp(T0 + 60 * 61, datetime.UTC).strftime("%m-%d %H:%M")
        assert first_row.nth(0).inner_text() == "+1" and first_row.nth(1).inner_text() == due  # when +1 is due
        # a new user's report: the rows' cells ran together ("-0.438952.56") under headers they did not line up
        # with (a tbody shown as a block), and "27" stood beside "25.8": the body's columns are the header's,
        # and the numbers of the table have one number of decimals
        # measured in one script: the page replaces the rows at every poll (each half second here), so a
        # row measured cell by cell from Python can be detached between two calls (CI saw a None box)
        boxes = page.evaluate(
            """() => {
              const table = document.getElementById("forecast-table");
              const box = (e) => { const r = e.getBoundingClientRect(); return [r.x, r.width]; };
              const row = table.tBodies[0].rows[0];
              return [...table.tHead.rows[0].cells].map((head, k) => [box(head), box(row.cells[k])]);
            }"""
        )
        assert len(boxes) == 5
        for k, (head, cell) in enumerate(boxes):
            assert abs(head[0] - cell[0]) < 1 and abs(head[1] - cell[1]) < 1, (k, head, cell)
        numbers = page.locator("#forecast-table tbody td:nth-child(n+3)").all_inner_texts()
        assert len({len(t.partition(".")[2]) for t in numbers}) == 1, numbers
        with Client(server.url) as client:  # a spike below (one above right after an outlier above would
            # be the second of a run on one side: a level shift): ringed on the chart, as its result says
            spike = client.observe("default", "sensor-1", -5000.0, timestamp=T0 + 60 * 61)
        assert spike.outlier
        page.wait_for_selector('#chart circle.observed-dot.outlier[data-step="62"]', timeout=15_000)
        assert page.locator("#chart circle.observed-dot.outlier").count() == outliers + 1
        # the axis spans the values, not the spike (a new user, session 51: one -999 among readings of 17-25 had
        # stretched it to -1000, and every other value and forecast was a flat line); the spike at the axis' edge
        page.wait_for_timeout(600)  # (a poll after the spike's)
        axis = [float(t) for t in page.locator("#chart g.axis text:not(.x-label)").all_text_contents()]
        assert min(axis) > -1000, axis
        spike_dot = page.locator('#chart circle.observed-dot.outlier.past-axis[data-step="62"]')
        assert spike_dot.get_attribute("data-value") == "-5000"
        assert "drawn at the axis' edge" in spike_dot.locator("title").text_content()
        with Client(server.url) as client:  # a stuck reading: its repeats past the improbable run are held back,
            # hollow and grey on the chart (flat_runs.py), as their results and the stats say
            stuck = client.observe_many("default", [("sensor-1", 22.5, T0 + 60 * (62 + i)) for i in range(20)])
            held = [r.step for r in stuck if r.held]
            assert held and client.series_stats("default", "sensor-1").held == len(held)
        page.wait_for_selector(f'#chart circle.observed-dot.held[data-step="{held[-1]}"]', timeout=15_000)
        dots = page.locator("#chart circle.observed-dot.held")
        assert [int(step) for step in dots.evaluate_all("ds => ds.map((d) => d.dataset.step)")] == held
        assert "held back: a stuck value's repeat" in dots.first.locator("title").text_content()
        page.wait_for_timeout(600)  # one more poll: nothing may fail while the page keeps refreshing
        screenshot = artifact_path(tmp_path)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    print(f"dashboard screenshot: {screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert problems == []


def _x_axis(browser, server: ServerProcess, series: str, last_step: int) -> tuple[str | None, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.add_init_script("localStorage.setItem('tbptt.interval', '0.5')")
    try:
        page.goto(f"{server.url}/#model=default&series={series}")
        page.wait_for_selector(f'#chart svg[data-last-step="{last_step}"]', timeout=15_000)
        return page.locator("#chart svg").get_attribute("data-x-axis"), page.locator(
            "#chart text.x-label"
        ).all_text_contents()
    finally:
        page.close()


def test_the_x_axis_shows_time_when_the_values_carry_timestamps(browser, server: ServerProcess) -> None:
    with Client(server.url) as client:  # one value a minute for an hour, from 2024-03-01T00:00:00Z
        client.observe_many("default", [("timed", float(i % 7), T0 + 60 * i) for i in range(60)])
        client.observe_many("default", [("untimed", float(i % 7)) for i in range(30)])
    kind, labels = _x_axis(browser, server, "timed", 60)
    assert kind == "time" and labels, labels
    assert all(re.fullmatch(r"0[01]:[0-5]\d", label) for label in labels), labels  # HH:MM within the hour or so
    kind, labels = _x_axis(browser, server, "untimed", 30)
    assert kind == "step" and all(label.isdigit() for label in labels), labels
    # a new user (session 50): a window of 2 to 4 days whose ticks fall half a day apart read "01-20, 01-20, 01-21"
    with Client(server.url) as client:  # 200 values 15 minutes apart: 50 hours shown, a tick every 50 values
        client.observe_many("default", [("quarter", float(i % 9), T0 + 900 * i) for i in range(200)])
    kind, labels = _x_axis(browser, server, "quarter", 200)
    assert kind == "time" and len(set(labels)) == len(labels) > 2, labels
    assert all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d", label) for label in labels), labels  # MM-DD HH:MM


def _terms(page, list_id: str) -> dict[str, str]:
    """A rendered <dl>'s terms and their values."""
    terms = page.locator(f"#{list_id} dt").all_inner_texts()
    return dict(zip(terms, page.locator(f"#{list_id} dd").all_inner_texts(), strict=True))


def test_the_truncation_card_shows_the_advisor_and_the_guards_and_resets_the_learning_rate(
    browser, server: ServerProcess
) -> None:
    """A network-only model with lr = 10 on the echo of 20 steps: the guards back its rate off and
    roll it back, the advisor flags k2 = 8 as too short; the card shows the values the API gives,
    and its button puts the configured rate back."""
    rng = random.Random(5)
    noise = [rng.gauss(0.0, 1.0) for _ in range(420)]
    config = {"hidden_size": 8, "k1": 2, "k2": 8, "n_features": 2, "hybrid": False, "lr": 10.0, "probe_every": 8}
    with Client(server.url) as client:
        client.create_model("hot", **config)
        for start in range(20, 420, 100):
            items = [(f"e{i}", [noise[t - i], noise[t - i - 20]]) for t in range(start, start + 100) for i in range(3)]
            client.observe_many("hot", items)
    with httpx.Client(base_url=server.url) as http:
        report = http.get("/v1/models/hot/truncation").json()
        updates = http.get("/v1/models/hot").json()["updates"]
    assert report["probes"] > 0 and report["recommended_k2"] > 8 and "too short" in report["verdict"]
    assert updates["rollbacks"] >= 1 and updates["lr"] < 10.0

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.add_init_script("localStorage.setItem('tbptt.interval', '0.5')")
    try:
        page.goto(f"{server.url}/#model=hot&series=e0")
        page.wait_for_selector("#truncation dd", timeout=15_000)
        card, guards = _terms(page, "truncation"), _terms(page, "guards")
        verdict = page.locator("#truncation-verdict").inner_text()
        grade = page.locator("#truncation-verdict").get_attribute("class")
        # the same card for a window long enough for the data whose bias is above the bound: a
        # warning, not the wall's red (the page's own renderer, given the API's bodies)
        with httpx.Client(base_url=server.url) as http:
            info = http.get("/v1/models/hot").json()
        script = """([report, info]) => { renderTruncation(report, info);
            return [document.querySelector('#truncation-verdict').className,
                    [...document.querySelectorAll('#truncation dd')].map((dd) => dd.className)]; }"""
        biased = page.evaluate(script, [{**report, "too_short": False, "biased": True}, info])
        unbounded = page.evaluate(script, [{**report, "too_short": False, "biased": True, "relative_bias": None}, info])
        passing = page.evaluate(script, [{**report, "too_short": False, "biased": False}, info])
        # a cost of 1.25 as the verdict writes it, "1.2" (toFixed read "1.3": a new user, session 50)
        tie = {**report, "recommended_k2": report["window"] + 2, "cost_ratio": 1.25}
        # rendered and read in one evaluate: the page's own refresh re-rendered the card with the API's report
        # between two calls (under load, session 57: '22 (2.8× per update)' read for the tie's)
        tie_card = page.evaluate(
            """([report, info]) => { renderTruncation(report, info);
                const terms = [...document.querySelectorAll('#truncation dt')].map((dt) => dt.innerText);
                return document.querySelectorAll('#truncation dd')[terms.indexOf('recommended k2')].innerText; }""",
            [tie, info],
        )
        page.evaluate(script, [report, info])
        disabled_before = page.locator("#reset-lr").is_disabled()
        page.locator("#reset-lr").click()
        page.wait_for_function(
            "document.querySelector('#guards').innerText.includes('1.00 (lr 10.0 of 10)')", timeout=15_000
        )
        disabled_after = page.locator("#reset-lr").is_disabled()
    finally:
        page.close()
    assert card["window K in use"] == "8 (k2 = 8, k1 = 2)"
    assert tie_card == f"{report['window'] + 2} ({1.25:.1f}× per update)" == f"{report['window'] + 2} (1.2× per update)"
    assert card["recommended k2"] == f"{report['recommended_k2']} ({report['cost_ratio']:.1f}× per update)"
    bias = report["relative_bias"]
    assert card["relative truncation bias"] == ("unbounded" if bias is None else f"{bias:#.3g}".rstrip("."))
    measured, shown = report["measured_bias"], card["measured on the probe's windows"]
    assert shown == "–" if measured is None else float(shown) == pytest.approx(measured, rel=5e-3)  # 3 digits
    assert card["probes"] == str(report["probes"]) and verdict == report["verdict"]
    assert report["too_short"] and grade == "verdict bad"
    # the rows: window, bias, measured, recommended k2, probes; the bias row amber like the verdict
    # (it was red whenever the bound passed truncation_bias, and uncoloured when unbounded)
    assert biased[0] == "verdict warn" and biased[1][1] == biased[1][3] == "warn" and unbounded[1][1] == "warn"
    assert passing[0] == "verdict good" and passing[1][1] == ""
    assert guards["roll-backs"] == str(updates["rollbacks"]) and guards["divergences"] == str(updates["divergences"])
    assert guards["learning-rate scale"].startswith(f"{updates['lr'] / 10.0:#.3g}")
    assert not disabled_before and disabled_after  # enabled while backed off, disabled once reset
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/v1/models/hot").json()["updates"]["lr"] == 10.0


def test_timestamps_past_what_a_date_can_show_leave_the_page_working(browser, server: ServerProcess) -> None:
    # Microseconds sent as unix seconds (1.7e15) were accepted; the page's toISOString threw on them
    # ("Invalid time value") and the chart and cards never rendered, so its axis falls back to steps.
    # Since session 25 the server refuses a timestamp past the year 9999 (422), and the page must work at
    # the range's end, which a date can show.
    micros = T0 * 1_000_000
    last = 253402300799 - 60 * 29  # the last 30 minutes of the year 9999
    with Client(server.url) as client:
        with pytest.raises(Unprocessable, match=r"microseconds\? divide by 1e6"):
            client.observe_many("default", [("micros", 1.0, micros)])
        client.observe_many("default", [("late", float(i % 5), last + 60 * i) for i in range(30)])
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.add_init_script("localStorage.setItem('tbptt.interval', '0.5')")
    try:
        page.goto(f"{server.url}/#model=default&series=late")
        page.wait_for_selector('#chart svg[data-last-step="30"]', timeout=15_000)
        labels = page.locator("#chart text.x-label").all_text_contents()
        accuracy = _terms(page, "accuracy")
        status = page.locator("#status").inner_text()
    finally:
        page.close()
    assert labels, labels
    assert accuracy["last timestamp"].startswith("9999-12-31"), accuracy
    assert status.startswith("live"), status
    assert problems == []


def test_an_update_with_nothing_to_learn_is_said_so_on_the_updates_card(browser, server: ServerProcess) -> None:
    """A new user (session 50): after a new series' first value the card read "last loss 0", and the loss line
    fell to 0, as if the model had learned everything. Such an update (loss and gradient exactly 0) is said so."""
    with Client(server.url) as client:
        client.create_model("fresh", hidden_size=4, k1=1, k2=2)
        client.observe_many("fresh", [("a", 1.0), ("a", 2.0), ("a", 3.0)])  # updates that learn
        client.observe("fresh", "b", 5.0)  # b's first value: its tick's update scores nothing
        updates = client.get_model("fresh").updates
    assert (updates.updates, updates.last_loss, updates.last_grad_norm) == (4, 0.0, 0.0)
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.add_init_script("localStorage.setItem('tbptt.interval', '0.5')")
    try:
        page.goto(f"{server.url}/#model=fresh&series=a")
        page.wait_for_selector('#chart svg[data-last-step="3"]', timeout=15_000)
        assert _terms(page, "updates")["last loss"] == "0 (nothing to learn: no value scored)"
    finally:
        page.close()


@pytest.mark.parametrize("width", [1280, 1400, 1920])
def test_the_forecast_tables_numbers_fit_their_cells_at_common_widths(browser, server: ServerProcess, width) -> None:
    """A new user (session 50): at 1400 px the forecast card was 283 px wide, its headers cut ("ste due (UTC) mea")
    and its numbers run together ("20.3014.4326.1")."""
    with Client(server.url) as client:
        client.observe_many("default", [(f"w{width}", 1000 + 300 * math.sin(i / 3), T0 + 3600 * i) for i in range(60)])
    page = browser.new_page(viewport={"width": width, "height": 1000})
    try:
        page.goto(f"{server.url}/#model=default&series=w{width}")
        page.wait_for_selector("#forecast-table tbody tr", timeout=15_000)
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll('#forecast-table th, #forecast-table tbody tr:first-child td')]
                 .filter((cell) => cell.scrollWidth > cell.clientWidth).map((cell) => cell.innerText)"""
        )
    finally:
        page.close()
    assert overflowing == []
