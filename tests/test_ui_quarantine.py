"""The sensors view's readings set aside (issue 14, item 3) in a real headless Chromium (Debian's),
against the real stack: the api serving the page, the aggregator, the broker and PostgreSQL.

"house" sends five readings at the right time (seqs 1..5, the last 8 s ago), then three whose
clock went an hour back (seqs 6..8): the aggregator keeps those aside. The administrator sees them
with their reason and releases one (then it is a stored reading) and deletes another; a user who
is not an administrator sees the list without the buttons.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from citizenwatt_api.auth import create_user
from tests.services import MqttObserver, count_rows, wait_until
from tests.test_ui_browser import ADMIN, BROWSER_ARGS, CHROMIUM, Page, Stack
from tests.uistack import running_stack
from tools.localstack import LocalMosquitto

pytestmark = pytest.mark.backends("plain")

VIEWER = ("viewer", "a long enough password")
QUARANTINED = "SELECT count(*) FROM quarantined_readings"


def reading(seq: int, ts: float) -> bytes:
    return json.dumps({"v": 1, "sensor": "house", "kind": "simulator", "ts": ts, "power": 3000.0, "seq": seq}).encode()


@pytest.fixture(scope="module")
def stack(
    mosquitto_module: LocalMosquitto, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed: sudo apt-get install chromium (make setup does it)")
    logs = tmp_path_factory.mktemp("ui-quarantine")
    with running_stack(mosquitto_module.url, module_database_url, logs, simulators=[]) as running:
        install = urllib.request.Request(
            f"{running.url}/api/v2/install",
            data=json.dumps({"login": ADMIN[0], "password": ADMIN[1]}).encode(),
            headers={"Content-Type": "application/json", "Origin": running.url},
            method="POST",
        )
        with urllib.request.urlopen(install, timeout=10) as response:
            assert response.status == 201
        with psycopg.connect(module_database_url, autocommit=True) as conn:
            create_user(conn, VIEWER[0], VIEWER[1], is_admin=False)
        now = time.time()
        observer = MqttObserver(mosquitto_module.url, "citizenwatt/house/#", client_id="ui-quarantine-sender")
        try:
            for seq in range(1, 6):
                observer.publish("citizenwatt/house/reading", reading(seq, now - 48 + 8 * seq))
            wait_until(lambda: count_rows(module_database_url) == 5, message="the five right readings")
            for seq in range(6, 9):
                observer.publish("citizenwatt/house/reading", reading(seq, now - 3600 - 48 + 8 * seq))
            wait_until(lambda: count_rows(module_database_url, QUARANTINED) == 3, message="three set aside")
        finally:
            observer.close()
        yield Stack(running.url, module_database_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def test_a_user_sees_the_readings_set_aside_without_buttons(browser: Browser, stack: Stack) -> None:
    tab = Page(browser, stack)
    page = tab.page
    page.goto("/#/login")
    page.get_by_label("Login").fill(VIEWER[0])
    page.get_by_label("Password").fill(VIEWER[1])
    page.get_by_role("button", name="Log in").click()
    page.locator("#live-power").wait_for()
    page.goto("/#/sensors")
    section = page.get_by_role("region", name="Readings set aside")
    expect(section.locator("tbody tr")).to_have_count(3)
    expect(section.locator("tbody tr").first).to_contain_text("Clock went back")
    expect(section.get_by_role("button")).to_have_count(0)
    tab.close()


def test_the_administrator_releases_one_and_deletes_another(browser: Browser, stack: Stack) -> None:
    """Newest received first: the rows are seqs 8, 7, 6. Releasing seq 6 stores it (the readings
    go from 5 to 6) and says so; deleting seq 7 forgets it; seq 8 is left, the section still shown."""
    tab = Page(browser, stack)
    tab.log_in()
    page = tab.page
    page.goto("/#/sensors")
    section = page.get_by_role("region", name="Readings set aside")
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(3)
    oldest = rows.nth(2)
    expect(oldest).to_contain_text("time went back: seq 6 is stamped")
    expect(oldest).to_contain_text("before seq 5 (")
    expect(oldest).to_contain_text("3,000 W")
    tab.shot("quarantine")
    oldest.get_by_role("button", name=re.compile("^Release the reading of house stamped ")).click()
    expect(section.get_by_role("status")).to_contain_text("Reading stored at ")
    expect(rows).to_have_count(2)
    assert count_rows(stack.database_url, "SELECT count(*) FROM readings WHERE seq = 6") == 1
    assert count_rows(stack.database_url) == 6
    rows.nth(1).get_by_role("button", name=re.compile("^Delete the reading of house stamped ")).click()
    expect(section.get_by_role("status")).to_have_text("Reading deleted.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("seq 8")
    assert count_rows(stack.database_url, QUARANTINED) == 1 and count_rows(stack.database_url) == 6
    tab.close()
