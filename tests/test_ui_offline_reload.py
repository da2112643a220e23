"""A reload while the api is frozen (issue 13, item 2): the service worker (services/ui/sw.js) serves
the cached page, which says the server does not answer and recovers by itself; and it leaves the
API alone. In Debian's Chromium against the real stack (the api serving a copy of services/ui that
one test edits, the aggregator, one simulated sensor reading every second).

What is expected, from the rules of service workers rather than from the code:
- a worker needs a secure context; http://127.0.0.1 is one (a loopback address is "potentially
  trustworthy", W3C Secure Contexts 3.2), so the page served there registers its worker;
- a request for which the worker does not call respondWith goes to the network as if there were no
  worker: DevTools then reports its response as not from the service worker;
- a worker script that differs by one byte is a new worker; it is installed at the next navigation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright
from playwright.sync_api import Page as PlaywrightPage

from tests.services import ServiceProcess, wait_until
from tests.test_ui_assets import fetch, files_on_disk, version_of
from tests.test_ui_browser import ADMIN, BROWSER_ARGS, CHROMIUM, Page, Stack
from tests.uistack import RunningStack, Simulated, running_stack
from tools.localstack import REPO, LocalMosquitto

pytestmark = pytest.mark.backends("plain")

UI = REPO / "services" / "ui"
# The banner's words (i18n.js, English) for a request that got no answer in time: a frozen server
# accepts the connection and says nothing, so the page's requests time out.
NO_ANSWER = "The server does not answer. Retrying…"


@pytest.fixture(scope="module")
def ui_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the page, which the upgrade test edits."""
    folder = tmp_path_factory.mktemp("ui-offline") / "ui"
    shutil.copytree(UI, folder)
    return folder


@pytest.fixture(scope="module")
def running(
    mosquitto_module: LocalMosquitto,
    module_database_url: str,
    ui_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed: sudo apt-get install chromium (make setup does it)")
    api_env = {"CW_UI_DIR": str(ui_copy), "CW_ADMIN_LOGIN": ADMIN[0], "CW_ADMIN_PASSWORD": ADMIN[1]}
    logs = tmp_path_factory.mktemp("ui-offline-logs")
    with running_stack(
        mosquitto_module.url, module_database_url, logs, [Simulated("house", seed=1)], api_env=api_env
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(running: RunningStack, module_database_url: str) -> Stack:
    return Stack(running.url, module_database_url)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running_playwright:
        yield running_playwright


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def tab(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh context (no worker, no cache), logged in, the live figure shown, the page controlled
    by its service worker."""
    page = Page(browser, stack)
    page.log_in()
    wait_for_live_figure(page.page)
    assert page.page.evaluate("window.isSecureContext") is True
    page.page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20000)
    yield page
    assert page.problems == []
    page.close()


def wait_for_live_figure(page: PlaywrightPage) -> None:
    """The live view shows a figure the stream keeps fresh."""
    page.wait_for_function(
        "(document.querySelector('#live-power')?.textContent ?? '–') !== '–'"
        " && document.querySelector('#live-updated')?.dataset.state === 'fresh'",
        timeout=30000,
    )


@contextmanager
def frozen(process: ServiceProcess) -> Iterator[None]:
    """The process stopped (SIGSTOP: its sockets accept connections and say nothing), always continued."""
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.process.pid, signal.SIGCONT)


def cache_names(page: PlaywrightPage) -> list[str]:
    names: list[str] = page.evaluate("caches.keys()")
    return names


def page_version(page: PlaywrightPage) -> str:
    """The version of the page's files the document loaded (its module script's URL)."""
    src: str = page.evaluate("document.querySelector('script[type=module]').src")
    return urllib.parse.urlsplit(src).path.split("/")[2]


def test_the_worker_is_served_at_the_root_never_cached_and_knows_the_current_files(stack: Stack, ui_copy: Path) -> None:
    """/sw.js: scope "/" allowed, revalidated every time (no-cache), JavaScript; in it, the version
    index.html points at and the versioned URL of every file of the folder but index.html and sw.js
    (listed here from the disk). It is not among the versioned files."""
    version = version_of(stack.url)
    reply = fetch(stack.url, "/sw.js")
    assert reply.status == 200
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["service-worker-allowed"] == "/"
    assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
    source = reply.body.decode()
    assert f'const VERSION = "{version}";' in source
    shell_line = next(line for line in source.splitlines() if line.startswith("const SHELL = "))
    shell = json.loads(shell_line.removeprefix("const SHELL = ").split(";")[0])
    on_disk = set(files_on_disk(ui_copy)) - {"index.html", "sw.js"}
    assert {"js/app.js", "app.css", "vendor/uplot/uPlot.iife.min.js"} <= on_disk
    assert sorted(shell) == sorted(f"/ui/{version}/{name}" for name in on_disk)
    assert fetch(stack.url, "/sw.js", {"If-None-Match": reply.headers["etag"]}).status == 304
    assert fetch(stack.url, f"/ui/{version}/sw.js").status == 404


def test_a_reload_while_the_api_is_frozen_shows_the_page_which_recovers_by_itself(
    tab: Page, running: RunningStack
) -> None:
    """The api frozen (SIGSTOP), a reload: the worker waits 3 s for index.html, then serves the cached
    one; the page starts, its session request times out (8 s) and the banner says the server does
    not answer, under the page's own header (not a blank tab). Continued (SIGCONT), the same
    document finds the api again (its start loop asks every 3 s), hides the banner and shows the
    live figure, without a reload."""
    page = tab.page
    with frozen(running.api):
        started = time.monotonic()
        page.reload(timeout=20000)
        page.wait_for_function(
            "!document.querySelector('#banner').hidden"
            f" && document.querySelector('#banner').textContent === {NO_ANSWER!r}",
            timeout=20000,
        )
        print(f"\nreload with the api frozen: the banner after {time.monotonic() - started:.1f} s")
        assert page.locator(".brand").is_visible()
        page.evaluate("window.sameDocument = true")
    wait_for_live_figure(page)
    page.wait_for_function("document.querySelector('#banner').hidden", timeout=20000)
    assert page.evaluate("window.sameDocument") is True
    # While the api was away the browser logged its failed requests: expected, unlike any other.
    tab.problems[:] = [p for p in tab.problems if "net::ERR_" not in p]


class Responses:
    """What DevTools says of every response the tab receives: whether its service worker gave it."""

    def __init__(self, page: PlaywrightPage) -> None:
        self.by_path: dict[str, list[bool]] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.responseReceived", self._received)
        cdp.send("Network.enable")

    def _received(self, event: dict[str, Any]) -> None:
        response = event["response"]
        path = urllib.parse.urlsplit(response["url"]).path
        self.by_path.setdefault(path, []).append(bool(response.get("fromServiceWorker")))


def direct(base: str, path: str) -> tuple[int, Any]:
    """The api's own answer, asked without a browser: status and JSON body."""
    try:
        with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


NEWEST_ON_CHART = """() => Math.max(...Object.values(JSON.parse(document.querySelector('#live-chart').dataset.points))
  .flat().map(([ts]) => ts))"""

PAGE_FETCH = """async path => {
  const response = await fetch(path, { credentials: 'omit', headers: { Accept: 'application/json' } });
  return [response.status, await response.json()];
}"""


def test_the_worker_leaves_the_api_and_the_live_stream_alone(tab: Page, stack: Stack) -> None:
    """Through the controlled page: a refused API request (no cookie: 401) reaches the page with the
    api's own status and JSON, as asked directly; /healthz the same; none of them, nor the live
    stream (which keeps the figure fresh), nor a navigation to /login, comes from the worker. The
    page's files do (the check can tell the two apart)."""
    page = tab.page
    responses = Responses(page)
    page.reload()
    wait_for_live_figure(page)
    refused = page.evaluate(PAGE_FETCH, "/api/v2/sensors")
    assert refused == list(direct(stack.url, "/api/v2/sensors"))
    assert refused[0] == 401
    # The browser logs the refusal it was asked for (as it would without a worker): expected.
    tab.problems[:] = [p for p in tab.problems if "status of 401" not in p]
    assert page.evaluate(PAGE_FETCH, "/healthz")[0] == 200
    version = page_version(page)
    # The stream's readings keep coming (one a second): a newer one than the newest on the chart.
    newest = page.evaluate(NEWEST_ON_CHART)
    page.wait_for_function(f"({NEWEST_ON_CHART})() > {newest}", timeout=20000)
    other = page.context.new_page()
    other_responses = Responses(other)
    try:
        other.goto("/login")
        assert other.locator("form").count() >= 1
    finally:
        other.close()
    for path in ("/api/v2/sensors", "/healthz", "/api/v2/live", "/api/v2/session"):
        assert responses.by_path.get(path), (path, sorted(responses.by_path))
        assert not any(responses.by_path[path]), path
    assert other_responses.by_path["/login"] == [False]
    # Every file of the page, on this reload, came from the worker (its cache: no network).
    files = {path: given for path, given in responses.by_path.items() if path.startswith("/ui/")}
    assert f"/ui/{version}/js/app.js" in files
    assert all(all(given) for given in files.values()), files
    assert responses.by_path["/"] == [True]  # the reload's index.html, fetched by the worker


def test_a_new_version_of_the_page_replaces_the_old_one_and_its_cache(tab: Page, ui_copy: Path) -> None:
    """One more line in charts.js is a new tree, hence a new version: a reload loads index.html from
    the network, which points at the new version; the browser finds /sw.js changed, installs the new
    worker, which caches the new files and deletes the old version's cache."""
    page = tab.page
    before = page_version(page)
    assert cache_names(page) == [f"citizenwatt-{before}"]
    charts = ui_copy / "js" / "charts.js"
    original = charts.read_bytes()
    charts.write_bytes(original + b"\n// one more line\n")
    try:
        page.reload()
        wait_for_live_figure(page)
        after = page_version(page)
        assert after != before
        wait_until(lambda: cache_names(page) == [f"citizenwatt-{after}"], timeout=20, message="only the new cache")
        cached_index: str = page.evaluate(
            "async name => (await (await caches.open(name)).match('/')).text()", f"citizenwatt-{after}"
        )
        assert f"/ui/{after}/js/app.js" in cached_index
        charts_cached: str = page.evaluate(
            "async url => (await (await caches.match(url)).text())", f"/ui/{after}/js/charts.js"
        )
        assert charts_cached.endswith("// one more line\n")
        page.wait_for_function("navigator.serviceWorker.controller?.state === 'activated'")
    finally:
        charts.write_bytes(original)


def test_on_a_plain_http_lan_address_the_page_works_without_a_worker(playwright: Playwright, stack: Stack) -> None:
    """The usual Pi setup: http://<a name or LAN address>:8080. Not a secure context (neither https
    nor a loopback name or address), so the browser offers no service worker; the page registers
    none, logs no error for it, and works as before. The name is mapped to 127.0.0.1 by Chromium's
    resolver, so the browser sees a LAN-like origin while the test's api listens on the loopback."""
    port = urllib.parse.urlsplit(stack.url).port
    resolver = "--host-resolver-rules=MAP citizenwatt.lan 127.0.0.1"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[*BROWSER_ARGS, resolver])
    try:
        tab = Page(chromium, Stack(f"http://citizenwatt.lan:{port}", stack.database_url))
        tab.log_in()
        wait_for_live_figure(tab.page)
        assert tab.page.evaluate("[window.isSecureContext, 'serviceWorker' in navigator]") == [False, False]
        tab.page.reload()
        wait_for_live_figure(tab.page)
        assert tab.problems == []
        tab.close()
    finally:
        chromium.close()
