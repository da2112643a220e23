"""The web page in a real headless Chromium (Debian's), against the real stack: api, aggregator,
broker, database and two simulated sensors. Screenshots go to test-artifacts/.

The tests share one stack and run in file order, like a newcomer's first visit: install, watch
live, browse history, change settings.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from playwright.sync_api import Browser, ConsoleMessage, sync_playwright

from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings
from tests.services import count_rows, wait_until
from tests.uistack import Simulated, running_stack
from tools.localstack import REPO, LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
PARIS = ZoneInfo("Europe/Paris")
ADMIN = ("admin", "correct horse battery")
# A fixed past day with hand-made readings: sensor "a" draws 1000 W from 10:00 to 11:00 (day
# price), sensor "b" 500 W from 02:00 to 03:00 (inside the 22:00-06:00 night window they are
# stored under). One reading a minute, well within the 300 s gap limit, so by hand:
# a = 1000 W x 1 h = 1.000 kWh (day), b = 500 W x 1 h = 0.500 kWh (night), all = 1.500 kWh.
# It lies in a year before the test run, so the year view holds only these readings and not the
# simulators' live ones.
PAST_DAY = "2025-01-16"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Stack:
    url: str
    database_url: str


def store_hour(database_url: str, sensor: str, local_start: datetime, watts: float) -> None:
    start = local_start.timestamp()
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        readings = [Reading(sensor=sensor, kind="simulator", ts=start + 60 * i, power=watts) for i in range(61)]
        store_readings(conn, readings, load_household(conn), PARIS)


@pytest.fixture(scope="module")
def stack(
    mosquitto_module: LocalMosquitto, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed: sudo apt-get install chromium (make setup does it)")
    logs = tmp_path_factory.mktemp("ui-stack")
    db_url = module_database_url
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")  # 22:00-06:00
    day = datetime.fromisoformat(PAST_DAY).replace(tzinfo=PARIS)
    store_hour(db_url, "a", day.replace(hour=10), 1000.0)
    store_hour(db_url, "b", day.replace(hour=2), 500.0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE household SET night_start_minute = NULL, night_end_minute = NULL")
    # Alerts checked every second (not every minute), so the alert test need not wait long.
    with running_stack(
        mosquitto_module.url,
        db_url,
        logs,
        simulators=[Simulated("house", seed=1), Simulated("heatpump", seed=2)],
        aggregator_env={"CW_ALERT_INTERVAL_SECONDS": "1"},
    ) as running:
        yield Stack(running.url, db_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records console errors and failed requests, which no test may leave behind."""

    def __init__(self, browser: Browser, stack: Stack, **context_options: Any) -> None:
        self.context = browser.new_context(base_url=stack.url, locale="en-GB", **context_options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)

    def log_in(self) -> None:
        self.page.goto("/#/login")
        self.page.get_by_label("Login").fill(ADMIN[0])
        self.page.get_by_label("Password").fill(ADMIN[1])
        self.page.get_by_role("button", name="Log in").click()
        self.page.locator("#live-power").wait_for()

    def close(self) -> None:
        self.context.close()
        assert self.problems == []


@pytest.fixture
def tab(browser: Browser, stack: Stack) -> Iterator[Page]:
    page = Page(browser, stack)
    yield page
    page.close()


def number_in(text: str) -> float:
    match = re.search(r"-?\d[\d\s\u202f,.]*", text)
    assert match, text
    return float(match.group(0).replace("\u202f", "").replace(" ", "").replace(",", ""))


def test_first_visit_installs_then_shows_the_house_live(tab: Page) -> None:
    page = tab.page
    page.goto("/")
    page.get_by_role("heading", name="Welcome to CitizenWatt").wait_for()
    assert not page.get_by_role("link", name="Sensors").is_visible()  # no menu before there is an account
    tab.shot("install")
    page.get_by_label("Login").fill(ADMIN[0])
    page.get_by_label("Password (8 characters or more)").fill(ADMIN[1])
    page.get_by_label("Password again").fill("something else")
    page.get_by_role("button", name="Create and start").click()
    page.get_by_text("The two passwords differ.").wait_for()
    page.get_by_label("Password again").fill(ADMIN[1])
    page.get_by_role("button", name="Create and start").click()
    power = page.locator("#live-power")
    page.wait_for_function("(document.querySelector('#live-power')?.textContent ?? '–') !== '–'")
    first = power.text_content()
    # The simulated house's power changes from one reading to the next: the page must follow.
    page.wait_for_function(f"document.querySelector('#live-power').textContent !== {first!r}", timeout=15000)
    assert number_in(power.text_content() or "") > 0
    assert re.fullmatch(r"updated \d s ago", page.locator("#live-updated").text_content() or "")
    page.locator("#live-chart canvas").wait_for()
    assert page.locator("#tariff").text_content() == "☀ Peak hours"
    tab.shot("live")


def test_history_of_a_past_day_in_kwh_and_euros_per_sensor(tab: Page) -> None:
    tab.log_in()
    page = tab.page
    page.goto(f"/#/history/day/{PAST_DAY}")
    page.locator("#history-chart canvas").wait_for()
    assert page.locator("#period-title").text_content() == "Thursday, 16 January 2025"
    page.get_by_role("button", name="kWh").click()
    assert page.locator("#total").text_content() == "1.500 kWh"
    assert page.locator("#total-day").text_content() == "1.000 kWh"
    assert page.locator("#total-night").text_content() == "0.500 kWh"
    # Pointing at a bar tells its value. The x scale runs from -0.5 to 23.5 over the plot's width
    # (24 hours in January, no DST change), so hour h is centred at (h + 0.5) / 24 of the width.
    detail = page.locator("#bucket-detail")
    assert detail.text_content() == "Point at or tap a bar for its value."
    plot = page.locator("#history-chart .u-over")
    box = plot.bounding_box()
    assert box
    bars = ((10, "10:00 · 1.000 kWh · off-peak 0.000 kWh"), (2, "02:00 · 0.500 kWh · off-peak 0.500 kWh"))
    for hour, expected in bars:
        plot.hover(position={"x": (hour + 0.5) / 24 * box["width"], "y": box["height"] / 2})
        page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    page.get_by_role("button", name="€").click()
    # Euros from /api/v2/costs: the household is on EDF Base (migration 7's default), whose first
    # seeded version (2025-02-01, 0.2016 EUR/kWh) also prices the days before it. Per hour:
    # 02h 0.5 kWh x 0.2016 = 0.1008 EUR, 10h 1.0 kWh x 0.2016 = 0.2016 EUR; the smallest (0.1008)
    # needs 2 decimals for two significant digits: 0.10 + 0.20 = 0.30 (exactly 0.3024).
    page.wait_for_function("document.querySelector('#total')?.textContent?.endsWith('€')")
    assert page.locator("#total").text_content() == "0.30 €"
    assert page.locator("#costs-table tr[data-part=base]").inner_text().split() == [
        "Base",
        "1.500",
        "0.2016",
        "0.30",
        "€",
    ]
    tab.shot("history-day-euros")
    page.get_by_role("button", name="kWh").click()
    page.locator("#sensor-pick").select_option(label="a")
    page.wait_for_function("document.querySelector('#total')?.textContent === '1.000 kWh'")
    assert page.locator("#total-night").text_content() == "0.000 kWh"
    page.locator("#sensor-pick").select_option(label="All sensors")
    page.wait_for_function("document.querySelector('#total')?.textContent === '1.500 kWh'")
    # The week holding that Thursday, and its neighbours through the arrows and the date picker.
    page.get_by_role("button", name="Week").click()
    page.wait_for_function("document.querySelector('#period-title').textContent.startsWith('13 Jan')")
    assert page.locator("#total").text_content() == "1.500 kWh"
    page.get_by_role("button", name="Next").click()
    page.locator("#history-empty").wait_for()
    assert page.locator("#history-empty").text_content() == "No readings in this period."
    page.get_by_role("button", name="Previous").click()
    page.wait_for_function("document.querySelector('#total')?.textContent === '1.500 kWh'")
    page.get_by_role("button", name="Month").click()
    page.wait_for_function("document.querySelector('#period-title').textContent === 'January 2025'")
    assert page.locator("#total").text_content() == "1.500 kWh"
    page.get_by_role("button", name="Year").click()
    page.wait_for_function("document.querySelector('#period-title').textContent === '2025'")
    assert page.locator("#total").text_content() == "1.500 kWh"
    tab.shot("history-year")
    page.get_by_label("Year", exact=True).select_option("2024")
    page.wait_for_function("document.querySelector('#period-title').textContent === '2024'")
    page.locator("#history-empty").wait_for()


def test_history_downloads_the_shown_period_as_csv(tab: Page) -> None:
    tab.log_in()
    page = tab.page

    def link(name: str) -> tuple[str, dict[str, str]]:
        href = page.locator(f"#csv-{name}").get_attribute("href") or ""
        path, _, query = href.partition("?")
        return path, dict(urllib.parse.parse_qsl(query))

    page.goto(f"/#/history/day/{PAST_DAY}")
    page.locator("#csv-energy").wait_for()
    assert (
        " ".join(page.locator("#downloads").inner_text().split()) == "Download (CSV): kWh and € per bar every reading"
    )
    assert page.get_by_role("link", name="kWh and € per bar").get_attribute("id") == "csv-energy"
    assert link("energy") == (
        "/api/v2/export/energy.csv",
        {"sensor": "all", "start": PAST_DAY, "bucket": "hour", "count": "24", "tz": "Europe/Paris"},
    )
    assert link("readings") == (
        "/api/v2/export/readings.csv",
        {"sensor": "all", "start": PAST_DAY, "end": PAST_DAY, "tz": "Europe/Paris"},
    )
    with page.expect_download() as energy_download:
        page.locator("#csv-energy").click()
    assert energy_download.value.suggested_filename == f"citizenwatt-energy-all-hour-{PAST_DAY}-24.csv"
    energy_rows = Path(energy_download.value.path()).read_text().splitlines()
    # 24 hours and a header. Sensor b's night hour and sensor a's day hour (see PAST_DAY), at EDF
    # Base's first seeded version (2025-02-01: 0.2016 EUR/kWh, 13.72 EUR/month), which also prices
    # the days before it: 0.5 kWh = 0.1008 EUR, 1 kWh = 0.2016 EUR, all in the version's default
    # period, so day euros (the kWh keep the night flag they were stored with). Each hour's share
    # of January's subscription: 13.72 / (31 x 24) = 0.01844086 EUR, so the costs are 0.1008 +
    # 0.01844086 = 0.11924086 and 0.2016 + 0.01844086 = 0.22004086, and an empty hour costs its
    # subscription alone. 2025-01-16T00:00Z is 1 736 985 600 (20 104 days), so 02:00+01:00 is
    # 1 736 989 200 and 10:00+01:00 1 737 018 000.
    assert len(energy_rows) == 25
    assert energy_rows[3] == (
        "2025-01-16T02:00:00+01:00,2025-01-16T03:00:00+01:00,1736989200,"
        "0.500000,0.000000,0.500000,0.100800,0.100800,0.000000,500.000,"
        "0.500000,0.000000,0.100800,0.000000,0.018441,0.119241"
    )
    assert energy_rows[11] == (
        "2025-01-16T10:00:00+01:00,2025-01-16T11:00:00+01:00,1737018000,"
        "1.000000,1.000000,0.000000,0.201600,0.201600,0.000000,1000.000,"
        "1.000000,0.000000,0.201600,0.000000,0.018441,0.220041"
    )
    assert energy_rows[1] == (
        "2025-01-16T00:00:00+01:00,2025-01-16T01:00:00+01:00,1736982000,,,,,,,,,,,,0.018441,0.018441"
    )
    with page.expect_download() as readings_download:
        page.locator("#csv-readings").click()
    readings_rows = Path(readings_download.value.path()).read_text().splitlines()
    assert len(readings_rows) == 1 + 61 + 61  # each hour has a reading a minute, both ends included
    assert readings_rows[1] == "2025-01-16T02:00:00+01:00,1736989200,b,500.0,,,night"
    assert readings_rows[-1] == "2025-01-16T11:00:00+01:00,1737021600,a,1000.0,,,day"
    # The week and the month around that day, for sensor a: the links follow what is shown.
    page.locator("#sensor-pick").select_option(label="a")
    page.get_by_role("button", name="Week").click()
    page.wait_for_function("document.querySelector('#csv-energy').href.includes('bucket=day')")
    assert link("energy")[1] == {
        "sensor": "1",
        "start": "2025-01-13",
        "bucket": "day",
        "count": "7",
        "tz": "Europe/Paris",
    }
    assert link("readings")[1] == {"sensor": "1", "start": "2025-01-13", "end": "2025-01-19", "tz": "Europe/Paris"}
    page.get_by_role("button", name="Month").click()
    page.wait_for_function("document.querySelector('#csv-energy').href.includes('count=31')")
    assert link("readings")[1]["end"] == "2025-01-31"
    page.locator("#sensor-pick").select_option(label="All sensors")
    tab.shot("history-downloads")


# Comparisons, on days of their own (2023 and 2022: no other test looks there). Sensor a draws
# 1000 W and sensor b 250 W from 10:00, for one and two hours, on Wednesday 2023-03-15; a drew
# 2000 W for an hour the day before and 500 W a year earlier, at the same time. By hand (kWh):
#   2023-03-15: a 1.0 (10h), b 0.25 (10h) + 0.25 (11h); household 1.5, of which 1.25 at 10h
#   2023-03-14 (the day before): 2.0 at 10h; 2022-03-15 (a year earlier, a Tuesday): 0.5 at 10h
# Like for like, over the hours measured in both (10h only): 1.25 against 2.0 = -37.5 %, against
# 0.5 = +150 %. Its week (Monday 13 March): 2.0 + 1.5 = 3.5; 52 weeks earlier is the week of
# Monday 2022-03-14, whose Tuesday (0.5) faces Tuesday 2023-03-14 (2.0): +300 %; the week before
# measured nothing.
COMPARE_DAY = "2023-03-15"


def expect_energy_request(page: Any, route: str, action: Callable[[], None]) -> dict[str, str]:
    """Do ``action`` and return the query of the /api/v2/energy/<route> request it makes."""
    with page.expect_request(lambda request: f"/api/v2/energy/{route}?" in request.url) as request:
        action()
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.value.url).query))


def legend(page: Any) -> list[str]:
    return [" ".join(text.split()) for text in page.locator("#history-legend > span").all_inner_texts()]


def test_history_compares_with_the_previous_period_and_a_year_earlier_and_splits_by_sensor(
    tab: Page, browser: Browser, stack: Stack
) -> None:
    day = datetime.fromisoformat(COMPARE_DAY).replace(tzinfo=PARIS, hour=10)
    store_hour(stack.database_url, "a", day, 1000.0)
    store_hour(stack.database_url, "b", day, 250.0)
    store_hour(stack.database_url, "b", day + timedelta(hours=1), 250.0)
    store_hour(stack.database_url, "a", day - timedelta(days=1), 2000.0)
    store_hour(stack.database_url, "a", day.replace(year=2022), 500.0)
    tab.log_in()
    page = tab.page
    page.goto(f"/#/history/day/{COMPARE_DAY}")
    page.locator("#history-chart canvas").wait_for()
    page.get_by_role("button", name="kWh").click()
    chart = page.locator("#history-chart")
    assert chart.get_attribute("data-series") == "total,night" and legend(page) == ["Peak", "Off-peak"]
    assert page.locator("#total").text_content() == "1.500 kWh"
    day_query = {"sensor": "all", "start": COMPARE_DAY, "period": "day", "bucket": "hour", "tz": "Europe/Paris"}
    query = expect_energy_request(page, "compare", lambda: page.get_by_label("previous period").check())
    assert query == {**day_query, "with": "previous"}
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series === 'total,night,previous'")
    assert legend(page) == ["Peak", "Off-peak", "Day before"]
    assert page.locator("#span-previous").text_content() == "14 Mar 2023"
    assert page.locator("#total-previous").text_content() == "2.000 kWh"
    assert page.locator("#change-previous").text_content() == "-37.5 % like for like"
    assert page.locator("#change-previous").get_attribute("title") == "over the bars measured in both periods: 1"
    query = expect_energy_request(page, "compare", lambda: page.get_by_label("same period last year").check())
    assert query == {**day_query, "with": "previous,year"}
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series === 'total,night,previous,year'")
    assert legend(page) == ["Peak", "Off-peak", "Day before", "A year earlier"]
    assert page.locator("#span-year").text_content() == "15 Mar 2022"
    assert page.locator("#total-year").text_content() == "0.500 kWh"
    assert page.locator("#change-year").text_content() == "+150.0 % like for like"
    plot = page.locator("#history-chart .u-over")
    box = plot.bounding_box()
    assert box
    expected = "10:00 · 1.250 kWh · off-peak 0.000 kWh · day before 2.000 kWh · a year earlier 0.500 kWh"
    plot.hover(position={"x": 10.5 / 24 * box["width"], "y": box["height"] / 2})
    page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    tab.shot("history-compare")

    # Split by sensor: one stacked bar per sensor that measured something, their totals adding up
    # to the household's, the reference lines still over them.
    query = expect_energy_request(page, "by-sensor", lambda: page.get_by_label("by sensor").check())
    assert query == {"start": COMPARE_DAY, "period": "day", "bucket": "hour", "tz": "Europe/Paris"}
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series?.startsWith('sensor-')")
    # Sensor a (id 1) and b (id 2), the tallest stack (a + b) drawn first.
    assert chart.get_attribute("data-series") == "sensor-2,sensor-1,previous,year"
    assert legend(page) == ["a · 1.000 kWh", "b · 0.500 kWh", "Day before", "A year earlier"]
    assert page.locator("#total").text_content() == "1.500 kWh"
    expected = "10:00 · a 1.000 kWh · b 0.250 kWh · total 1.250 kWh · day before 2.000 kWh · a year earlier 0.500 kWh"
    plot.hover(position={"x": 10.5 / 24 * box["width"], "y": box["height"] / 3})
    page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    tab.shot("history-by-sensor")

    # The choices stay on for the next view: the week, whose year-earlier week starts on a Monday.
    query = expect_energy_request(page, "compare", lambda: page.get_by_role("button", name="Week").click())
    assert query == {**day_query, "start": "2023-03-13", "period": "week", "bucket": "day", "with": "previous,year"}
    page.wait_for_function("document.querySelector('#span-year')?.textContent === '14 Mar – 20 Mar 2022'")
    assert page.locator("#total").text_content() == "3.500 kWh"
    assert legend(page)[-2:] == ["Week before", "52 weeks earlier"]
    assert page.locator("#total-year").text_content() == "0.500 kWh"
    assert page.locator("#change-year").text_content() == "+300.0 % like for like"
    assert page.locator("#total-previous").text_content() == "–"
    assert page.locator("#change-previous").text_content() == "nothing to compare with"
    # One sensor picked: its own figures, and no split (it is the household's).
    page.locator("#sensor-pick").select_option(label="a")
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series === 'total,night,previous,year'")
    assert page.get_by_label("by sensor").is_disabled()
    assert page.locator("#total").text_content() == "3.000 kWh"
    page.locator("#sensor-pick").select_option(label="All sensors")
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series?.startsWith('sensor-')")
    for name in ("previous period", "same period last year", "by sensor"):
        page.get_by_label(name).uncheck()
    page.wait_for_function("document.querySelector('#history-chart')?.dataset.series === 'total,night'")
    assert legend(page) == ["Peak", "Off-peak"] and page.locator(".reference").count() == 0

    # In French on a phone: everything on, and nothing wider than the screen.
    phone = Page(browser, stack, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone.log_in()
        small = phone.page
        small.locator("#language").select_option("fr")
        small.goto(f"/#/history/day/{COMPARE_DAY}")
        small.locator("#history-chart canvas").wait_for()
        for name in ("période précédente", "même période l'an dernier", "par capteur"):
            small.get_by_label(name).check()
        small.wait_for_function(
            "document.querySelector('#history-chart')?.dataset.series === 'sensor-2,sensor-1,previous,year'"
        )
        assert legend(small) == ["a · 1,000 kWh", "b · 0,500 kWh", "La veille", "Un an plus tôt"]
        assert small.locator("#change-previous").text_content() == "-37,5 % à périmètre égal"
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the compared history scrolls sideways on a phone ({width} px)"
        phone.shot("phone-history-compare-fr")
    finally:
        phone.close()


def test_chart_ticks_show_the_decimals_their_step_needs(tab: Page) -> None:
    tab.log_in()
    ticks = "([s, v]) => import('/js/charts.js').then((m) => m.tickValues(null, v, 1, 0, s))"
    # A step of 0.0002 is written with 4 decimals, 0.25 with 2; 500 with none, thousands grouped.
    assert tab.page.evaluate(ticks, [0.0002, [0, 0.0002, 0.0004]]) == ["0.0000", "0.0002", "0.0004"]
    assert tab.page.evaluate(ticks, [0.25, [0.5, 0.75]]) == ["0.50", "0.75"]
    assert tab.page.evaluate(ticks, [500, [1000, 1500]]) == ["1,000", "1,500"]


def test_changing_the_night_window_changes_todays_split(tab: Page, stack: Stack) -> None:
    tab.log_in()
    page = tab.page
    today = datetime.now(PARIS).date().isoformat()
    page.goto(f"/#/history/day/{today}")
    page.locator("#total-night").wait_for()
    assert page.locator("#total-night").text_content() == "0.000 kWh"  # no night window yet
    page.goto("/#/settings")
    now = datetime.now(PARIS)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    page.get_by_label("No off-peak hours").uncheck()
    page.get_by_label("Starts").fill(start)
    page.get_by_label("Ends").fill(end)
    form = page.locator("#night-form")
    form.get_by_role("button", name="Save").click()
    form.get_by_text("Saved.").wait_for()
    tab.shot("settings")
    # Readings stored from now on are night ones: wait for twenty seconds' worth of them.
    night_rows = (
        "SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.key = 'house' AND r.night_rate"
    )
    wait_until(lambda: count_rows(stack.database_url, night_rows) >= 20, timeout=60, message="night readings")
    page.goto(f"/#/history/day/{today}")
    page.locator("#total-night").wait_for()
    assert number_in(page.locator("#total-night").text_content() or "") > 0
    page.goto("/#/live")
    page.wait_for_function("document.querySelector('#tariff')?.textContent === '☾ Off-peak hours'")
    tab.shot("history-night-split")


def test_sensors_page_lists_every_sensor_with_its_health(tab: Page) -> None:
    tab.log_in()
    page = tab.page
    page.get_by_role("link", name="Sensors").click()
    rows = page.locator(".sensors-table tbody tr")
    rows.first.wait_for()
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.sensor)")) == ["a", "b", "heatpump", "house"]
    house = page.locator("tr[data-sensor=house]")
    assert house.locator(".badge").text_content() == "online"
    assert page.locator("tr[data-sensor=a] .badge").text_content() == "offline"
    assert house.locator("td").nth(1).text_content() == "simulator (simulated)"
    assert number_in(house.locator("td").nth(6).text_content() or "") > 0
    tab.shot("sensors")


def test_a_silent_sensor_is_not_counted_in_power_now(tab: Page, stack: Stack) -> None:
    # Sensor "c" said 500 kW 200 s ago and nothing since: more than the 120 s after which a sensor
    # is offline. The simulators draw a few kW at most, so a total of 500 000 W or more would
    # mean its stale value was added in.
    with psycopg.connect(stack.database_url, autocommit=True) as conn, conn.transaction():
        stale = Reading(sensor="c", kind="simulator", ts=datetime.now().timestamp() - 200, power=500_000.0)
        store_readings(conn, [stale], load_household(conn), PARIS)
    tab.log_in()
    page = tab.page
    page.wait_for_function("document.querySelector('#live-power').textContent !== '–'")
    assert number_in(page.locator("#live-power").text_content() or "") < 500_000
    page.locator("#sensor-pick").select_option(label="c")
    # 200 s is 3.3 minutes, said as "3 min".
    page.get_by_text("Last reading 3 min ago: is the collector running?").wait_for()
    assert page.locator("#live-power").text_content() == "–"


def test_an_alert_for_a_silent_sensor_in_the_live_and_sensors_views(tab: Page, stack: Stack) -> None:
    # Sensor "quiet" sent three readings 10 s apart, the last 980 s ago: it is allowed
    # max(10 x 10 s, 300 s) = 300 s of silence, so the aggregator raises a silent alert.
    last = datetime.now().timestamp() - 980
    with psycopg.connect(stack.database_url, autocommit=True) as conn, conn.transaction():
        readings = [Reading(sensor="quiet", kind="simulator", ts=last - 10 * i, power=40.0) for i in range(3)]
        store_readings(conn, readings, load_household(conn), PARIS)
    sql = (
        "SELECT count(*) FROM alerts a JOIN sensors s ON s.id = a.sensor_id WHERE s.key = 'quiet' AND a.kind = 'silent'"
    )
    wait_until(lambda: count_rows(stack.database_url, sql) == 1, message="the aggregator's silent alert")
    tab.log_in()
    page = tab.page
    since = datetime.fromtimestamp(last, PARIS).strftime("%d/%m/%Y, %H:%M")  # en-GB's short date and time
    item = page.locator("#alerts-list li[data-sensor=quiet]")
    item.wait_for()
    assert item.text_content() == f"quiet: no reading since {since} (one every 10 s expected)."
    assert page.locator("#alerts h2").text_content() == "Alerts"
    tab.shot("live-alert")
    page.get_by_role("link", name="Sensors").click()
    page.locator("#alerts-list li[data-sensor=quiet]").wait_for()
    # No night measured yet: no standby figure.
    assert page.locator("tr[data-sensor=quiet] td.standby").text_content() == "–"
    page.locator("#language").select_option("fr")
    page.get_by_text(f"quiet : aucune mesure depuis le {since.replace(',', '')}").wait_for()


def test_french_on_a_phone(browser: Browser, stack: Stack) -> None:
    phone = Page(browser, stack, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.log_in()
    page = phone.page
    page.locator("#language").select_option("fr")
    assert page.get_by_role("link", name="Historique").is_visible()
    page.get_by_role("heading", name="Puissance instantanée").wait_for()
    page.locator("#live-chart canvas").wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    phone.shot("phone-live-fr")
    page.get_by_role("link", name="Historique").click()
    page.goto(f"/#/history/day/{PAST_DAY}")
    page.wait_for_function("document.querySelector('#total')?.textContent?.includes('kWh')")
    assert page.locator("#period-title").text_content() == "jeudi 16 janvier 2025"
    assert page.locator("#total").text_content() == "1,500\u202fkWh".replace("\u202f", " ")
    page.get_by_role("link", name="kWh et € par barre").wait_for()
    assert page.get_by_role("link", name="toutes les mesures").get_attribute("id") == "csv-readings"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the history page scrolls sideways on a phone ({width} px)"
    phone.shot("phone-history-fr")
    page.get_by_role("link", name="Réglages").click()
    page.get_by_role("heading", name="Heures creuses").wait_for()
    phone.close()


def test_radio_settings_are_checked_and_sent(tab: Page, stack: Stack) -> None:
    # The form is shown to a household with an nRF24 sensor (issue 13): one heard from once, in 2020.
    with psycopg.connect(stack.database_url, autocommit=True) as conn, conn.transaction():
        ts = datetime(2020, 1, 6, tzinfo=PARIS).timestamp()
        once = Reading(sensor="citizenwatt", kind="nrf24", ts=ts, power=90.0)
        store_readings(conn, [once], load_household(conn), PARIS)
    tab.log_in()
    page = tab.page
    page.get_by_role("link", name="Settings").click()
    form = page.locator("#radio-form")
    form.get_by_label("AES key (32 hex digits or 0-1-…-15)").fill("not-a-key")
    form.get_by_role("button", name="Save").click()
    form.get_by_text("16 numbers 0-255").wait_for()  # the api's own explanation, shown as is
    form.get_by_label("AES key (32 hex digits or 0-1-…-15)").fill("00112233445566778899aabbccddeeff")
    form.get_by_role("button", name="Save").click()
    form.get_by_text("Saved and sent to the collector.").wait_for()
    assert form.locator("#radios-known").text_content() == "Configured: citizenwatt (0xE056D446D0)"
    tab.problems = [p for p in tab.problems if "400" not in p]  # the refused request, logged by the browser


def test_an_api_error_is_shown_not_swallowed(tab: Page) -> None:
    tab.log_in()
    page = tab.page
    page.goto("/#/history/day/2026-02-30")
    page.locator("#history-error").wait_for()
    # A date no calendar has: said once, in words (the api is not even asked), not in the banner too.
    assert page.locator("#history-error").text_content() == "There is no such date: 2026-02-30."
    assert page.locator("#banner").is_hidden()


def test_password_change_wrong_passwords_and_logout(tab: Page) -> None:
    page = tab.page
    page.goto("/#/login")
    page.get_by_label("Login").fill(ADMIN[0])
    page.get_by_label("Password").fill("not the password")
    with page.expect_response("**/api/v2/login"):
        page.get_by_role("button", name="Log in").click()
    page.get_by_text("Wrong login or password").wait_for()
    tab.problems = [p for p in tab.problems if "403" not in p]  # the browser logs the refused request itself
    tab.log_in()
    page.get_by_role("link", name="Settings").click()
    form = page.locator("#password-form")
    form.get_by_label("Current password").fill(ADMIN[1])
    form.get_by_label("New password (8 characters or more)").fill("a new and longer one")
    form.get_by_role("button", name="Save").click()
    form.get_by_text("Password changed.").wait_for()
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in").wait_for()
    page.goto("/#/sensors")
    page.get_by_role("heading", name="Log in").wait_for()  # no session, no data
    page.get_by_label("Login").fill(ADMIN[0])
    page.get_by_label("Password").fill("a new and longer one")
    page.get_by_role("button", name="Log in").click()
    page.locator("#live-power").wait_for()
