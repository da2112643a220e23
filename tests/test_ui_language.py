"""Everything the page shows follows the chosen language (issue 13, items 3 and 4), in a real
headless Chromium against the real api and PostgreSQL: the server's refusals worded by their code,
the login throttle's wait, hour labels, the date picker, the period navigation that stops at today,
an impossible date said once, and the server-rendered /login page.

The browser itself speaks English (Page's locale en-GB), so anything French on screen comes from
the page's own switch, never from the browser. The stack is the api alone, as in test_ui_tariffs:
one reading a minute of sensor "a" stored straight into the database for one past day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.test_ui_browser import ADMIN, BROWSER_ARGS, CHROMIUM, PARIS, Page, Stack, store_hour
from tests.uistack import page_api
from tools.localstack import LocalMosquitto

pytestmark = pytest.mark.backends("plain")

# Sensor "a" draws 1000 W from 10:00 to 11:00 (Paris) on this Thursday: 1.000 kWh in the 10 h bar.
PAST_DAY = "2025-01-16"


@pytest.fixture(scope="module")
def stack(
    mosquitto_module: LocalMosquitto, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    store_hour(module_database_url, "a", datetime.fromisoformat(PAST_DAY).replace(tzinfo=PARIS, hour=10), 1000.0)
    logs = tmp_path_factory.mktemp("ui-language")
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
    """A logged-in tab of an English browser, switched to French on the page."""
    page = Page(browser, stack)
    page.log_in()
    page.page.locator("#language").select_option("fr")
    page.page.get_by_role("link", name="Historique").wait_for()
    yield page
    page.close()


def paris_today() -> date:
    return datetime.now(PARIS).date()


def test_a_server_refusal_is_shown_in_french(tab: Page) -> None:
    """A wrong current password: the api answers 403 wrong_current_password (English text), the
    page says it in French."""
    page = tab.page
    page.get_by_role("link", name="Réglages").click()
    form = page.locator("#password-form")
    form.get_by_label("Mot de passe actuel").fill("not the password")
    form.get_by_label("Nouveau mot de passe (8 caractères ou plus)").fill("a new and longer one")
    with page.expect_response("**/api/v2/account/password") as answer:
        form.get_by_role("button", name="Enregistrer").click()
    assert answer.value.status == 403 and answer.value.json()["code"] == "wrong_current_password"
    expect(form.locator(".status")).to_have_text("Le mot de passe actuel est faux.")
    tab.problems = [p for p in tab.problems if "403" not in p]  # the refused request, logged by the browser


def test_the_login_throttle_says_the_wait_in_french(browser: Browser, stack: Stack) -> None:
    """Five wrong passwords for one login from one address, then a sixth try: refused for the
    whole window (300 s after the first failure, a few ms ago): 300 s is said as 5 min.
    A login of its own ("intruder"), so that the other tests' admin is not locked out."""
    visitor = Page(browser, stack)
    page = visitor.page
    page.goto("/#/login")
    page.locator("#language").select_option("fr")
    page.get_by_label("Identifiant").fill("intruder")
    page.get_by_label("Mot de passe").fill("a guess")
    status = page.locator("#login-form .status")
    for _ in range(5):
        with page.expect_response("**/api/v2/login") as answer:
            page.get_by_role("button", name="Se connecter").click()
        assert answer.value.status == 403
        expect(status).to_have_text("Identifiant ou mot de passe incorrect.")
    with page.expect_response("**/api/v2/login") as answer:
        page.get_by_role("button", name="Se connecter").click()
    assert answer.value.status == 429
    # Sent seconds after the first failure: under 300 s left but over 240, said in whole minutes
    # rounded up: 5 min.
    assert 240 < int(answer.value.headers["retry-after"]) <= 300
    expect(status).to_have_text("Trop d'échecs de connexion : réessayez dans 5 min.")
    visitor.problems = [p for p in visitor.problems if "403" not in p and "429" not in p]
    # The server-rendered login page follows the page's choice too (the cw_lang cookie).
    page.goto("/login")
    page.get_by_role("heading", name="Connexion").wait_for()
    assert page.locator("html").get_attribute("lang") == "fr"
    # The bare server page names no icon: the browser asks for /favicon.ico, which is not there.
    visitor.problems = [p for p in visitor.problems if "404" not in p]
    visitor.close()


def test_hours_dates_and_the_date_picker_in_french(tab: Page) -> None:
    """The 10 h bar of PAST_DAY holds 1.000 kWh, none of it off-peak (the household has no
    off-peak hours): its words are "10 h · 1,000 kWh · heures creuses 0,000 kWh" (French hour and
    decimal comma). The tariff parts are "Heures pleines" and "Heures creuses", not "Jour"."""
    page = tab.page
    page.goto(f"/#/history/day/{PAST_DAY}")
    page.locator("#history-chart canvas").wait_for()
    page.get_by_role("button", name="kWh").click()
    assert page.locator("#period-title").text_content() == "jeudi 16 janvier 2025"
    legend = [" ".join(t.split()) for t in page.locator("#history-legend > span").all_inner_texts()]
    assert legend == ["Heures pleines", "Heures creuses"]
    plot = page.locator("#history-chart .u-over")
    box = plot.bounding_box()
    assert box
    # 24 bars over the plot's width (no DST change in January): hour h is centred at (h + 0.5) / 24.
    plot.hover(position={"x": (10 + 0.5) / 24 * box["width"], "y": box["height"] / 2})
    expected = "10 h · 1,000 kWh · heures creuses 0,000 kWh"
    page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    plot.hover(position={"x": (2 + 0.5) / 24 * box["width"], "y": box["height"] / 2})
    page.wait_for_function("document.querySelector('#bucket-detail').textContent.startsWith('2 h · ')")
    # The date picker: French month names whatever the browser's language, grouped and named.
    picker = page.get_by_role("group", name="Date")
    assert picker.get_by_label("Mois", exact=True).locator("option:checked").text_content() == "janvier"
    assert picker.get_by_label("Mois", exact=True).locator("option").all_text_contents()[:3] == [
        "janvier",
        "février",
        "mars",
    ]
    assert picker.get_by_label("Jour du mois").locator("option:checked").text_content() == "16"
    assert picker.get_by_label("Année").locator("option:checked").text_content() == "2025"
    picker.get_by_label("Mois", exact=True).select_option(label="février")  # the 16th of February
    page.wait_for_function("document.querySelector('#period-title').textContent === 'dimanche 16 février 2025'")
    assert page.url.endswith("#/history/day/2025-02-16")
    # The button groups are named for assistive technologies, in French.
    assert page.get_by_role("group", name="Période").get_by_role("button").count() == 4
    assert page.get_by_role("group", name="Unité").get_by_role("button").count() == 2
    tab.shot("language-history-fr")


def test_next_stops_at_today(tab: Page) -> None:
    page = tab.page
    today = paris_today()
    yesterday = today - timedelta(days=1)
    page.goto(f"/#/history/day/{yesterday.isoformat()}")
    page.wait_for_function("document.querySelector('#period-title')?.textContent")
    next_button = page.get_by_role("button", name="Suivant")
    expect(next_button).to_be_enabled()
    next_button.click()
    page.wait_for_url(f"**/#/history/day/{today.isoformat()}")
    expect(page.get_by_role("button", name="Suivant")).to_be_disabled()
    expect(page.get_by_role("button", name="Précédent")).to_be_enabled()
    # The month holding today: no next month either; the month before has one.
    page.get_by_role("button", name="Mois").click()
    page.wait_for_url(f"**/#/history/month/{today.isoformat()}")
    expect(page.get_by_role("button", name="Suivant")).to_be_disabled()
    page.get_by_role("button", name="Précédent").click()
    expect(page.get_by_role("button", name="Suivant")).to_be_enabled()
    # Days after today are not offered by the date picker (unless today is the month's last).
    page.goto(f"/#/history/day/{today.isoformat()}")
    page.wait_for_function("document.querySelector('#period-title')?.textContent")
    day_options = page.get_by_label("Jour du mois").locator("option")
    after_today = day_options.nth(today.day)  # 0-based: the option of day today.day + 1, if any
    if day_options.count() > today.day:
        assert after_today.is_disabled()
    assert not day_options.nth(today.day - 1).is_disabled()


def test_an_impossible_date_is_said_once_in_french(tab: Page) -> None:
    page = tab.page
    page.goto("/#/history/day/2026-02-30")
    error = page.locator("#history-error")
    expect(error).to_have_text("Cette date n'existe pas : 2026-02-30.")
    assert page.get_by_text("2026-02-30").count() == 1  # not in a banner as well
    assert page.locator("#banner").is_hidden()
    assert "Invalid" not in (page.locator("body").text_content() or "")


def test_english_hours_are_clock_times(browser: Browser, stack: Stack) -> None:
    """In English the 10 h bar reads "10:00", never "10h"; the tariff parts are Peak/Off-peak."""
    english = Page(browser, stack)
    english.log_in()
    page = english.page
    page.locator("#language").select_option("en")
    page.goto(f"/#/history/day/{PAST_DAY}")
    page.locator("#history-chart canvas").wait_for()
    page.get_by_role("button", name="kWh").click()
    plot = page.locator("#history-chart .u-over")
    box = plot.bounding_box()
    assert box
    plot.hover(position={"x": (10 + 0.5) / 24 * box["width"], "y": box["height"] / 2})
    expected = "10:00 · 1.000 kWh · off-peak 0.000 kWh"
    page.wait_for_function(f"document.querySelector('#bucket-detail').textContent === {expected!r}")
    legend = [" ".join(t.split()) for t in page.locator("#history-legend > span").all_inner_texts()]
    assert legend == ["Peak", "Off-peak"]
    english.close()


def test_the_keyboard_keeps_its_place_while_moving_through_periods(tab: Page) -> None:
    """Each move shows a new period (the view is built again): focus must come back to the control
    used, or a keyboard user starts again from the top of the page at every step. January 2025 and
    an arrow down on the month list: February 2025, the month list focused still."""
    page = tab.page
    page.goto(f"/#/history/month/{PAST_DAY}")
    page.wait_for_function("document.querySelector('#period-title')?.textContent === 'janvier 2025'")
    page.get_by_label("Mois", exact=True).focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.querySelector('#period-title')?.textContent === 'février 2025'")
    page.wait_for_function("document.activeElement?.id === 'date-month'")
    page.get_by_role("button", name="Précédent").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#period-title')?.textContent === 'janvier 2025'")
    page.wait_for_function("document.activeElement?.id === 'prev'")


FRENCH_WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
FRENCH_MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip


def in_french(day: date) -> str:
    return f"{FRENCH_WEEKDAYS[day.weekday()]} {day.day} {FRENCH_MONTHS[day.month - 1]} {day.year}"


def test_the_settings_date_fields_say_their_date_in_french(tab: Page) -> None:
    """The browser draws its date and time fields in its own language and format; beside each, its
    value in the page's language: the tariff's "from" field starts at today, the Tempo day at
    tomorrow, and a typed date (20 November 2025, a Thursday) is said as typed."""
    page = tab.page
    page.get_by_role("link", name="Réglages").click()
    today = paris_today()
    tariff_from = page.locator("#tariff-from + .date-echo")
    expect(tariff_from).to_have_text(in_french(today))
    assert tariff_from.get_attribute("aria-hidden") == "true"  # the field itself is what is read out
    expect(page.locator("#tariff-from")).to_have_accessible_name("À partir du")  # its name unchanged
    assert page.get_by_role("textbox", name="Jour", exact=True).get_attribute("id") == "tempo-day"
    tempo_day = page.locator("#tempo-day + .date-echo")
    expect(tempo_day).to_have_text(in_french(today + timedelta(days=1)))
    page.locator("#tempo-day").fill("2025-11-20")
    expect(tempo_day).to_have_text("jeudi 20 novembre 2025")
    # Time fields too: the off-peak hours (22:00-06:00 by default) are not "10:00 PM" on a French page.
    expect(page.locator("#night-start + .date-echo")).to_have_text("22:00")
    expect(page.locator("#night-end + .date-echo")).to_have_text("06:00")
    tab.shot("language-settings-fr")
