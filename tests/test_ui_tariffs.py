"""The tariff editor and the costs in euros, in a real headless Chromium against the real api and
PostgreSQL (issue 12, items 1 and 2, the page's part). Screenshots go to test-artifacts/.

The stack is the api alone: readings are stored straight into the database (as the aggregator
would), so every figure below is worked out by hand from the readings each test stores. The tests
share the household and run in file order: an own tariff typed in the settings, a version added to
it, its costs in the history, then Tempo.

Prices are those of the tariffs typed here, or of migration 7's seeded EDF Tempo version of
2025-08-01 (peak red 0.6468 EUR/kWh, off-peak red 0.1460 EUR/kWh; off-peak 22:00-06:00).

How the api rounds (services/api/citizenwatt_api/costs.py): every leaf (a bucket's part, its
subscription) is rounded half up to one number of decimals for the whole answer, enough for the
smallest non-zero leaf to show two significant digits (2 at least), and every total is the sum of
the rounded leaves under it. The expected figures below follow that rule by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.test_ui_browser import (
    ADMIN,
    BROWSER_ARGS,
    CHROMIUM,
    PARIS,
    Page,
    Stack,
    store_hour,
)
from tests.uistack import page_api
from tools.localstack import LocalMosquitto

pytestmark = pytest.mark.backends("plain")

OWN = "Ours, two windows"
OWN_FROM = "2025-09-01"
LATER = "2025-10-01"
COST_DAY = "2025-09-17"
TINY_DAY = "2025-09-24"
EXPORT_DAY = "2025-10-08"
CHANGE_WEEK = "2025-09-29"  # Monday; the own tariff's second version starts on its Wednesday
TEMPO_FROM = "2025-11-01"
RED_DAY = "2025-11-20"


@pytest.fixture(scope="module")
def stack(
    mosquitto_module: LocalMosquitto, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # Every test's readings, stored before the api starts (each test says what they cost):
    for sensor, start, watts in (
        ("a", day_at(COST_DAY, 12), 1000.0),
        ("b", day_at(COST_DAY, 2), 500.0),
        ("a", day_at(TINY_DAY, 10), 6.0),
        ("a", day_at("2025-09-30", 10), 1000.0),
        ("a", day_at("2025-10-02", 10), 1000.0),
        ("a", day_at(EXPORT_DAY, 10), 600.0),
        ("sun", day_at(EXPORT_DAY, 12), -1200.0),
        ("a", day_at(RED_DAY, 10), 1000.0),
        ("b", day_at(RED_DAY, 22), 500.0),
        ("a", day_at("2025-11-21", 10), 1000.0),
    ):
        store_hour(module_database_url, sensor, start, watts)
    logs = tmp_path_factory.mktemp("ui-tariffs")
    with page_api(mosquitto_module.url, module_database_url, logs, install=ADMIN) as url:
        yield Stack(url, module_database_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Browser, stack: Stack) -> Iterator[Page]:
    page = Page(browser, stack)
    page.log_in()
    yield page
    page.close()


def day_at(iso_day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(iso_day).replace(tzinfo=PARIS, hour=hour, minute=minute)


def row_cells(page: Any, part: str) -> list[str]:
    """One row of the costs table, cell by cell."""
    cells = page.locator(f"#costs-table tr[data-part='{part}'] > *").all_inner_texts()
    return [cell.strip() for cell in cells]


def cost_cells(page: Any) -> dict[str, str]:
    """The costs table as {part key: its euros cell}."""
    rows = page.locator("#costs-table tr[data-part]").evaluate_all(
        "rows => rows.map(r => [r.dataset.part, r.lastElementChild.textContent])"
    )
    return dict(rows)


def test_an_own_tariff_with_two_windows_is_typed_and_listed(tab: Page) -> None:
    page = tab.page
    page.get_by_role("link", name="Settings").click()
    form = page.locator("#own-tariff-form")
    form.get_by_label("Name of the tariff").fill(OWN)
    form.get_by_label("Valid from").fill(OWN_FROM)
    form.get_by_label("Subscription (€/month)").fill("12")
    form.get_by_label("Period 1 name").fill("peak")
    form.get_by_label("Period 1 price (€/kWh)").fill("0.2081")
    form.get_by_role("button", name="Add a period").click()
    form.get_by_label("Period 2 name").fill("offpeak")
    form.get_by_label("Period 2 price (€/kWh)").fill("0.1635")
    # Two off-peak windows, the second on minutes that are not a quarter hour.
    for n, (start, end) in enumerate((("01:30", "07:00"), ("12:48", "14:12")), start=1):
        form.get_by_role("button", name="Add a window").click()
        form.get_by_label(f"Window {n} start").fill(start)
        form.get_by_label(f"Window {n} end").fill(end)
        form.get_by_label(f"Window {n} period").select_option(label="Off-peak")
    form.get_by_role("button", name="Create the tariff").click()
    form.get_by_text(f"Tariff “{OWN}” created.").wait_for()
    # Listed: applied from its first date (in force today, after the seeded Base of 2000-01-01),
    # picked, with its one version shown.
    row = page.locator(f"#household-tariffs tr[data-valid-from='{OWN_FROM}']")
    assert " ".join(row.locator("td").nth(1).inner_text().split()) == f"{OWN} in force"
    assert page.locator("#household-tariffs tbody tr").count() == 2
    assert page.locator("#tariff-pick option:checked").text_content() == f"{OWN} (your own)"
    version = page.locator(f"#tariff-versions .version[data-valid-from='{OWN_FROM}']")
    assert version.locator(".subscription").text_content() == "Subscription 12.00 €/month"
    assert version.locator("tr[data-period=peak]").inner_text().split() == ["Peak", "0.2081"]
    assert version.locator("tr[data-period=offpeak]").inner_text().split() == ["Off-peak", "0.1635"]
    assert (
        version.locator(".hours").text_content()
        == "Off-peak 01:30–07:00, Off-peak 12:48–14:12; Peak the rest of the day"
    )
    # The same name twice: the api's refusal is shown beside the form.
    form.get_by_label("Name of the tariff").fill(OWN)
    form.get_by_label("Period 1 price (€/kWh)").fill("0.3")
    form.get_by_role("button", name="Create the tariff").click()
    form.locator(".status.error").wait_for()
    assert OWN in (form.locator(".status").text_content() or "")
    tab.problems = [p for p in tab.problems if "409" not in p]  # the refused request, logged by the browser
    tab.shot("settings-own-tariff")


def test_a_version_from_a_later_date_is_added(tab: Page) -> None:
    page = tab.page
    page.goto("/#/settings")
    page.locator("#tariff-pick").select_option(label=f"{OWN} (your own)")
    form = page.locator("#version-form")
    assert page.locator("#version-title").text_content() == f"New version of {OWN}"
    # The new version starts as a copy of the newest one: a new peak price, and exported energy
    # credited at 0.10 EUR/kWh.
    assert form.get_by_label("Period 1 name").input_value() == "peak"
    assert form.get_by_label("Window 2 start").input_value() == "12:48"
    form.get_by_label("Valid from").fill(LATER)
    form.get_by_label("Period 1 price (€/kWh)").fill("0.25")
    form.get_by_label("Exported energy credited (€/kWh, 0 for none)").fill("0.1")
    form.get_by_role("button", name="Add this version").click()
    form.get_by_text("Version from 1 Oct 2025 saved.").wait_for()
    versions = page.locator("#tariff-versions .version")
    assert versions.evaluate_all("vs => vs.map(v => v.dataset.validFrom)") == [LATER, OWN_FROM]
    later = page.locator(f"#tariff-versions .version[data-valid-from='{LATER}']")
    assert later.locator("tr[data-period=peak]").inner_text().split() == ["Peak", "0.2500"]
    assert later.locator("tr[data-period=offpeak]").inner_text().split() == ["Off-peak", "0.1635"]
    assert "in force today" in (later.locator("h3").text_content() or "")
    assert later.get_by_text("Export credited 0.1000 €/kWh").is_visible()
    # A version typed by mistake is taken back.
    form.get_by_label("Valid from").fill("2026-03-01")
    form.get_by_role("button", name="Add this version").click()
    form.get_by_text("Version from 1 Mar 2026 saved.").wait_for()
    assert versions.count() == 3
    page.locator(".version[data-valid-from='2026-03-01']").get_by_role("button", name="Delete this version").click()
    page.wait_for_function("document.querySelectorAll('#tariff-versions .version').length === 2")
    assert versions.evaluate_all("vs => vs.map(v => v.dataset.validFrom)") == [LATER, OWN_FROM]
    tab.shot("settings-new-version")


def test_a_days_costs_by_part_add_up_to_the_total_shown(tab: Page) -> None:
    """On COST_DAY (Wednesday 17 September 2025; the own tariff's first version: peak 0.2081,
    off-peak 0.1635 from 01:30 to 07:00 and from 12:48 to 14:12, subscription 12 EUR/month):

    - sensor b, 500 W from 02:00 to 03:00: off-peak 0.5 kWh x 0.1635 = 0.08175 EUR (02h)
    - sensor a, 1000 W from 12:00 to 13:00: 12:00-12:48 peak 0.8 kWh x 0.2081 = 0.16648 EUR and
      12:48-13:00 off-peak 0.2 kWh x 0.1635 = 0.0327 EUR (12h)

    By hour (the day view): the smallest leaf, 0.0327, needs 3 decimals: 02h off-peak 0.082, 12h
    peak 0.166 and off-peak 0.033 (bar 0.199); peak 0.166 + off-peak (0.082 + 0.033 =) 0.115 =
    0.281 (exactly 0.28093).

    By day (the week of Monday 15 September): one day, peak 0.16648 and off-peak 0.08175 + 0.0327
    = 0.11445; the smallest needs 2 decimals: 0.17 + 0.11 = 0.28. With the subscription, each of
    the 7 days is 1/30 of September's 12 EUR = 0.40: 2.80, and 0.17 + 0.11 + 2.80 = 3.08.
    """
    page = tab.page
    page.goto(f"/#/history/day/{COST_DAY}")
    page.locator("#history-chart canvas").wait_for()
    page.get_by_role("button", name="kWh").click()
    assert page.locator("#total").text_content() == "1.500 kWh"
    with page.expect_request(lambda request: "/api/v2/costs?" in request.url) as costs_request:
        page.get_by_role("button", name="€").click()
    assert "subscription=false" in costs_request.value.url and "count=24" in costs_request.value.url
    page.locator("#costs-table").wait_for()
    assert page.locator("#total").text_content() == "0.281 €"
    assert cost_cells(page) == {"peak": "0.166 €", "offpeak": "0.115 €", "total": "0.281 €"}
    assert row_cells(page, "peak") == ["Peak", "0.800", "0.2081", "0.166 €"]
    assert row_cells(page, "offpeak") == ["Off-peak", "0.700", "0.1635", "0.115 €"]
    assert page.locator("#history-chart").get_attribute("data-series") == "part-peak,part-offpeak"
    # The 12h bar in words, each part as the api rounded it.
    plot = page.locator("#history-chart .u-over")
    box = plot.bounding_box()
    assert box
    plot.hover(position={"x": 12.5 / 24 * box["width"], "y": box["height"] - 2})
    expected = "12:00 · 0.199 € · peak 0.166 € · off-peak 0.033 €"
    page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    tab.shot("history-day-costs")

    page.get_by_role("button", name="Week").click()
    page.wait_for_function("document.querySelector('#total')?.textContent === '0.28 €'")
    assert cost_cells(page) == {"peak": "0.17 €", "offpeak": "0.11 €", "total": "0.28 €"}
    with page.expect_request(lambda request: "subscription=true" in request.url):
        page.get_by_label("include subscription").check()
    page.wait_for_function("document.querySelector('#total')?.textContent === '3.08 €'")
    assert cost_cells(page) == {"peak": "0.17 €", "offpeak": "0.11 €", "subscription": "2.80 €", "total": "3.08 €"}
    tab.shot("history-week-costs-subscription")


def test_a_tiny_cost_shows_its_digits_not_zero(tab: Page) -> None:
    # On TINY_DAY, sensor a draws 6 W from 10:00 to 11:00 (peak): 0.006 kWh x 0.2081 EUR/kWh =
    # 0.0012486 EUR, which two decimals would show as 0.00; two significant digits: 0.0012.
    page = tab.page
    page.goto(f"/#/history/day/{TINY_DAY}")
    page.get_by_role("button", name="€").click()
    page.locator("#costs-table").wait_for()
    assert page.locator("#total").text_content() == "0.0012 €"
    assert cost_cells(page) == {"peak": "0.0012 €", "total": "0.0012 €"}


def test_a_week_across_a_price_change(tab: Page) -> None:
    """The week of Monday 29 September 2025 holds the own tariff's price change of Wednesday 1
    October (peak 0.2081 -> 0.25). Sensor a draws 1000 W from 10:00 to 11:00 (peak) on Tuesday 30
    September and on Thursday 2 October: 1.0 kWh x 0.2081 = 0.2081 EUR, then 1.0 kWh x 0.25 =
    0.25 EUR. By day the smallest leaf (0.2081) needs 2 decimals: 0.21 + 0.25 = 0.46; each price
    is a part of its own."""
    page = tab.page
    page.goto(f"/#/history/week/{CHANGE_WEEK}")
    page.get_by_role("button", name="€").click()
    page.locator("#costs-table").wait_for()
    assert page.locator("#total").text_content() == "0.46 €"
    rows = page.locator("#costs-table tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.children].map(c => c.textContent.trim()))"
    )
    assert rows == [["Peak", "1.000", "0.2081", "0.21 €"], ["Peak", "1.000", "0.2500", "0.25 €"]]


def test_an_exporting_day_shows_the_export_credit(tab: Page) -> None:
    """On EXPORT_DAY (8 October 2025, the own tariff's version of 1 October: peak 0.25, export
    credited 0.10 EUR/kWh), sensor a imports 600 W from 10:00 to 11:00 (peak): 0.6 kWh x 0.25 =
    0.15 EUR; sensor "sun" exports 1200 W from 12:00 to 13:00: 1.2 kWh x 0.10 = 0.12 EUR credited.
    The smallest leaf (0.12) needs 2 decimals; total 0.15 - 0.12 = 0.03. The sun's hour imported
    nothing: no 0 kWh part is listed for it."""
    page = tab.page
    page.goto(f"/#/history/day/{EXPORT_DAY}")
    page.get_by_role("button", name="€").click()
    page.locator("#costs-table").wait_for()
    assert page.locator("#total").text_content() == "0.03 €"
    assert cost_cells(page) == {"peak": "0.15 €", "export": "−0.12 €", "total": "0.03 €"}
    assert row_cells(page, "peak") == ["Peak", "0.600", "0.2500", "0.15 €"]
    assert row_cells(page, "export") == ["Export credit", "1.200", "", "−0.12 €"]
    tab.shot("history-export-credit")


def test_a_tempo_red_day_set_in_the_page_is_priced_red(tab: Page, browser: Browser, stack: Stack) -> None:
    # The household takes EDF Tempo from TEMPO_FROM; RED_DAY (a Thursday) is set red in the page.
    # Sensor a draws 1000 W from 10:00 to 11:00 (peak), sensor b 500 W from 22:00 to 23:00
    # (off-peak, 22:00-06:00, still RED_DAY's Tempo day, which runs from 06:00 to 06:00):
    # 10h peak red 1.0 kWh x 0.6468 = 0.6468 EUR, 22h off-peak red 0.5 kWh x 0.1460 = 0.0730 EUR;
    # the smallest needs 3 decimals: 0.647 + 0.073 = 0.720 (exactly 0.7198).
    page = tab.page
    page.goto("/#/settings")
    choose = page.locator("#tariff-form")
    choose.get_by_label("Tariff").select_option(label="EDF Tarif Bleu - Tempo (Tempo)")
    choose.get_by_label("From").fill(TEMPO_FROM)
    choose.get_by_role("button", name="Use this tariff from this date").click()
    choose.get_by_text("EDF Tarif Bleu - Tempo from 1 Nov 2025.").wait_for()
    first = page.locator("#household-tariffs tbody tr").first
    assert first.get_attribute("data-valid-from") == TEMPO_FROM
    assert " ".join(first.locator("td").nth(1).inner_text().split()) == "EDF Tarif Bleu - Tempo in force"
    tempo = page.locator("#tempo-form")
    tempo.get_by_role("textbox", name="Day", exact=True).fill(RED_DAY)
    tempo.get_by_label("Colour").select_option(label="Red day")
    tempo.get_by_role("button", name="Save").click()
    tempo.get_by_text("20 Nov 2025: red day.").wait_for()
    # Tomorrow's colour, announced the evening before: set it and see it beside today's.
    tomorrow = (datetime.now(PARIS).date() + timedelta(days=1)).isoformat()
    tempo.get_by_role("textbox", name="Day", exact=True).fill(tomorrow)
    tempo.get_by_label("Colour").select_option(label="White day")
    tempo.get_by_role("button", name="Save").click()
    page.wait_for_function(f"document.querySelector('.tempo-day[data-day=\"{tomorrow}\"]')?.dataset.colour === 'white'")
    assert page.locator(f".tempo-day[data-day='{tomorrow}']").inner_text() == "Tomorrow: White day"
    tab.shot("settings-tempo")

    page.goto(f"/#/history/day/{RED_DAY}")
    page.get_by_role("button", name="€").click()
    page.locator("#costs-table").wait_for()
    assert page.locator("#total").text_content() == "0.720 €"
    assert cost_cells(page) == {"peak|red": "0.647 €", "offpeak|red": "0.073 €", "total": "0.720 €"}
    assert row_cells(page, "peak|red") == ["Peak · red day", "1.000", "0.6468", "0.647 €"]
    assert row_cells(page, "offpeak|red") == ["Off-peak · red day", "0.500", "0.1460", "0.073 €"]
    tab.shot("history-tempo-red")
    # The next day's colour was never given: priced as blue, and said so. Sensor a draws 1000 W
    # from 10:00 to 11:00: 1.0 kWh x 0.1494 (peak blue) = 0.1494 EUR, 2 decimals: 0.15.
    page.get_by_role("button", name="Next").click()
    page.wait_for_function("document.querySelector('#period-title').textContent === 'Friday, 21 November 2025'")
    page.wait_for_function("document.querySelector('#total')?.textContent === '0.15 €'")
    assert row_cells(page, "peak|blue") == ["Peak · blue day (assumed)", "1.000", "0.1494", "0.15 €"]

    # In French on a 360 px phone: the same figures, and nothing wider than the screen.
    phone = Page(browser, stack, viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True)
    try:
        phone.log_in()
        small = phone.page
        small.locator("#language").select_option("fr")
        small.goto(f"/#/history/day/{RED_DAY}")
        small.get_by_role("button", name="€").click()
        small.locator("#costs-table").wait_for()
        assert small.locator("#total").text_content() == "0,720 €"
        assert row_cells(small, "peak|red") == ["Heures pleines · jour rouge", "1,000", "0,6468", "0,647 €"]
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the costs scroll sideways on a phone ({width} px)"
        phone.shot("phone-history-costs-fr")
        small.get_by_role("link", name="Réglages").click()
        small.locator("#tariff-versions .version").first.wait_for()
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the tariff settings scroll sideways on a phone ({width} px)"
        phone.shot("phone-settings-tariffs-fr")
    finally:
        phone.close()
