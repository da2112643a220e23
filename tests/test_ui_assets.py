"""The web page's files: gzipped, cached for a year under a versioned URL, index.html revalidated
(issue 13, item 7). Through a real api process (and, for the reload, Debian's Chromium) serving a
copy of services/ui, which one test edits to see the URLs change.

What is expected, from the HTTP rules rather than from the code:
- an asset under ``/ui/<version>/`` says ``Cache-Control: public, max-age=31536000, immutable`` (a
  year, never revalidated), is gzipped when the request accepts gzip, and ``Vary: Accept-Encoding``
  since the same URL has two bodies;
- index.html says ``no-cache`` (kept, but revalidated every time) with an ETag, and answers the
  ETag it gave with a 304 and no body;
- the files on disk are the truth: every gzipped body, decompressed, is the file's bytes.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Page as PlaywrightPage

from tests.services import ServiceProcess, aggregator_online
from tests.test_ui_browser import ADMIN, BROWSER_ARGS, CHROMIUM, Page, Stack
from tools.localstack import REPO, LocalMosquitto, free_port, wait_for_port

pytestmark = pytest.mark.backends("plain")

UI = REPO / "services" / "ui"
YEAR_IMMUTABLE = "public, max-age=31536000, immutable"
VERSIONED = re.compile(r"^/ui/([0-9a-f]+)/(.+)$")
# Module specifiers in the page's ES modules: `import ... from "x"` (over several lines too),
# `export ... from "x"`, `import "x"` and `import("x")`, at the start of a statement.
IMPORTS = (
    re.compile(r"""^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']""", re.MULTILINE),
    re.compile(r"""^\s*import\s*["']([^"']+)["']""", re.MULTILINE),
    re.compile(r"""\bimport\(\s*["']([^"']+)["']\s*\)"""),
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
    """One request, as sent: no redirect followed, no body decompressed (unlike urllib or httpx)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def log_in(base: str) -> str:
    """The session cookie (``name=value``) of the administrator."""
    login = urllib.request.Request(
        f"{base}/login",
        data=urllib.parse.urlencode({"login": ADMIN[0], "password": ADMIN[1]}).encode(),
        headers={"Accept": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as response:
        return str(response.headers["set-cookie"].split(";")[0])


class References(HTMLParser):
    """The files a page loads: src and href of <script>, <link> and <img> (not <a>: navigation)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "link", "img"):
            self.found += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: bytes) -> list[str]:
    parser = References()
    parser.feed(html.decode())
    return parser.found


def version_of(base: str) -> str:
    """The versioned prefix index.html points at now (its module script's)."""
    scripts = [ref for ref in references(fetch(base, "/").body) if ref.endswith("/js/app.js")]
    assert len(scripts) == 1, scripts
    match = VERSIONED.match(scripts[0])
    assert match, scripts[0]
    return match.group(1)


def files_on_disk(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ui_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the page, every file modified just now, as after a checkout or an upgrade: without
    an explicit Cache-Control, a browser would then reckon a file fresh for only a tenth of its age
    (RFC 9111 4.2.2) and revalidate all of them on a reload."""
    folder = tmp_path_factory.mktemp("ui-assets") / "ui"
    shutil.copytree(UI, folder)
    for path in folder.rglob("*"):
        os.utime(path)
    return folder


@pytest.fixture(scope="module")
def stack(
    mosquitto_module: LocalMosquitto,
    module_database_url: str,
    ui_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The api on the copy of the page, an aggregator and one simulated sensor (a reading a second),
    so that the Live view has data to show and stream."""
    logs = tmp_path_factory.mktemp("ui-assets-logs")
    port = free_port()
    common = {"CW_DATABASE_URL": module_database_url, "CW_MQTT_URL": mosquitto_module.url}
    api_env = {
        **common,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_UI_DIR": str(ui_copy),
        "CW_ADMIN_LOGIN": ADMIN[0],
        "CW_ADMIN_PASSWORD": ADMIN[1],
    }
    api = ServiceProcess("citizenwatt_api", api_env, logs / "api.log").start()
    with aggregator_online(mosquitto_module.url, module_database_url, logs / "agg.log"):
        simulator_env = {
            **common,
            "CW_SENSOR_ID": "house",
            "CW_PERIOD_SECONDS": "1",
            "CW_SEED": "1",
            "CW_OUTBOX_PATH": str(logs / "house.sqlite"),
        }
        simulator = ServiceProcess("citizenwatt_simulator", simulator_env, logs / "house.log").start()
        try:
            wait_for_port(port, timeout=60)
            yield Stack(f"http://127.0.0.1:{port}", module_database_url)
        finally:
            simulator.stop()
            api.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def test_index_is_revalidated_and_answers_304_when_unchanged(stack: Stack) -> None:
    first = fetch(stack.url, "/", {"Accept-Encoding": "gzip"})
    assert first.status == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["content-type"] == "text/html; charset=utf-8"
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["vary"] == "Accept-Encoding"
    etag = first.headers["etag"]
    plain = fetch(stack.url, "/")
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(first.body) == plain.body  # the same page in either encoding
    assert plain.body.startswith(b"<!doctype html>")
    assert fetch(stack.url, "/index.html").body == plain.body
    # A browser revalidating its copy sends back the ETag it was given: nothing to send again.
    again = fetch(stack.url, "/", {"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert (again.status, again.body) == (304, b"")
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "no-cache"
    assert fetch(stack.url, "/", {"If-None-Match": '"something-else"'}).status == 200
    head = fetch(stack.url, "/", method="HEAD")
    assert (head.status, head.body, head.headers["etag"]) == (200, b"", etag)


def test_every_file_is_gzipped_and_cached_for_a_year(stack: Stack, ui_copy: Path) -> None:
    """Each file of the folder but index.html and sw.js, under the current prefix: gzip that decompresses
    to the file's bytes, identity without Accept-Encoding (or with gzip refused), a year's immutable
    cache. The service worker, like index.html, has its own unversioned URL, /sw.js, revalidated
    (tests/test_ui_offline_reload.py): a worker's scope is its URL's folder, and the browser must
    see a new version of it."""
    version = version_of(stack.url)
    on_disk = files_on_disk(ui_copy)
    del on_disk["index.html"], on_disk["sw.js"]
    assert {"app.css", "favicon.svg", "js/app.js", "vendor/uplot/uPlot.iife.min.js"} <= set(on_disk)
    gzipped = identity = 0
    for name, content in on_disk.items():
        url = f"/ui/{version}/{name}"
        reply = fetch(stack.url, url, {"Accept-Encoding": "gzip, deflate, br"})
        assert reply.status == 200, url
        assert reply.headers["cache-control"] == YEAR_IMMUTABLE, url
        assert reply.headers["vary"] == "Accept-Encoding", url
        assert reply.headers["content-encoding"] == "gzip", url
        assert gzip.decompress(reply.body) == content, url
        assert len(reply.body) < len(content), url
        gzipped += len(reply.body)
        identity += len(content)
        for accept in (None, "gzip;q=0", "br", "identity"):
            plain = fetch(stack.url, url, {"Accept-Encoding": accept} if accept else {})
            assert "content-encoding" not in plain.headers, (url, accept)
            assert plain.body == content, (url, accept)
            assert plain.headers["vary"] == "Accept-Encoding"
        if name.endswith(".js"):
            assert reply.headers["content-type"] == "text/javascript; charset=utf-8", url
        elif name.endswith(".css"):
            assert reply.headers["content-type"] == "text/css; charset=utf-8", url
        # Revalidating (a forced reload) needs no body either.
        assert fetch(stack.url, url, {"If-None-Match": reply.headers["etag"]}).status == 304, url
    # "*" and a lower but non-zero quality still allow gzip.
    for accept in ("*", "deflate, gzip;q=0.5"):
        assert (
            fetch(stack.url, f"/ui/{version}/app.css", {"Accept-Encoding": accept}).headers["content-encoding"]
            == "gzip"
        )
    print(f"\nthe page's files: {identity} bytes, {gzipped} gzipped ({len(on_disk) + 1} files with index.html)")


def test_every_reference_and_import_resolves_under_the_versioned_prefix(stack: Stack, ui_copy: Path) -> None:
    version = version_of(stack.url)
    prefix = f"/ui/{version}/"
    page = fetch(stack.url, "/").body
    refs = references(page)
    # index.html loads by hand: the icon, two style sheets, uPlot, the app module (and the icon again in the header).
    assert {ref.removeprefix(prefix) for ref in refs} == {
        "favicon.svg",
        "vendor/uplot/uPlot.min.css",
        "app.css",
        "vendor/uplot/uPlot.iife.min.js",
        "js/app.js",
    }
    for ref in refs:
        assert ref.startswith(prefix), ref
        assert fetch(stack.url, ref).status == 200, ref
    # Every module of js/, at its versioned URL, imports modules that resolve under the same prefix.
    modules = sorted(p.relative_to(ui_copy).as_posix() for p in (ui_copy / "js").rglob("*.js"))
    resolved: set[str] = set()
    for module in modules:
        source = (ui_copy / module).read_text()
        specifiers = [spec for pattern in IMPORTS for spec in pattern.findall(source)]
        for spec in specifiers:
            target = urllib.parse.urljoin(prefix + module, spec)
            assert target.startswith(prefix), (module, spec)
            reply = fetch(stack.url, target)
            assert reply.status == 200, (module, spec, target)
            assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
            assert reply.body == (ui_copy / target.removeprefix(prefix)).read_bytes()
            resolved.add(target.removeprefix(prefix))
    # app.js imports api, i18n and the five views by hand; with theirs, every module but app.js is
    # imported by another.
    assert resolved == set(modules) - {"js/app.js"}, sorted(set(modules) - resolved)


def test_other_versions_and_unversioned_paths_redirect_to_the_current_file(stack: Stack) -> None:
    """A page loaded before an upgrade asks for its files under the old version; an old link asks
    for /js/app.js. Both get a redirect (not cached) to the current file, never a 500; a path that
    is no file is a 404."""
    version = version_of(stack.url)
    for path in ("/ui/0123456789abcdef/js/app.js", "/js/app.js", "/ui/x/js/app.js"):
        reply = fetch(stack.url, path + "?v=1")
        assert reply.status == 307, path
        assert reply.headers["location"] == f"/ui/{version}/js/app.js?v=1", path
        assert reply.headers["cache-control"] == "no-cache", path
    for path in (
        f"/ui/{version}/js/nothing.js",
        f"/ui/{version}/index.html",
        f"/ui/{version}/../../pyproject.toml",
        f"/ui/{version}/",
        "/ui/",
        "/nothing",
    ):
        reply = fetch(stack.url, path)
        assert reply.status == 404, path
        assert json.loads(reply.body)["error"] == "Not Found", path
    assert fetch(stack.url, f"/ui/{version}/js/app.js", method="POST").status == 405


def test_api_routes_are_neither_compressed_nor_buffered(stack: Stack) -> None:
    health = fetch(stack.url, "/healthz", {"Accept-Encoding": "gzip"})
    assert health.status == 200
    assert "content-encoding" not in health.headers
    assert json.loads(health.body)["status"] == "ok"  # readable as it is: not gzipped
    # The live stream's first line ("retry: 2000", 13 bytes) reaches the client at once: a gzip
    # middleware would hold it until it has a block's worth.
    url = urllib.parse.urlsplit(stack.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("GET", "/api/v2/live", headers={"Accept-Encoding": "gzip", "Cookie": log_in(stack.url)})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        assert response.getheader("content-encoding") is None
        assert response.readline() == b"retry: 2000\n"
    finally:
        conn.close()


def test_a_changed_file_gets_a_new_url(stack: Stack, ui_copy: Path) -> None:
    charts = ui_copy / "js" / "charts.js"
    original = charts.read_bytes()
    before = version_of(stack.url)
    etag = fetch(stack.url, "/").headers["etag"]
    changed = original + b"\n// one more line\n"
    charts.write_bytes(changed)
    try:
        after = version_of(stack.url)
        assert after != before
        assert fetch(stack.url, "/", {"If-None-Match": etag}).status == 200  # index.html changed too
        assert fetch(stack.url, f"/ui/{after}/js/charts.js").body == changed
        # The old URL no longer serves the old file (a cache may hold it; the api does not).
        old = fetch(stack.url, f"/ui/{before}/js/charts.js")
        assert (old.status, old.headers["location"]) == (307, f"/ui/{after}/js/charts.js")
    finally:
        charts.write_bytes(original)
    # The version is the content's: the same files again, the same URL (a new modification time).
    assert version_of(stack.url) == before


@dataclass
class Transfer:
    """One request of the page as Chromium's DevTools protocol reports it."""

    url: str
    kind: str
    status: int = 0  # as the page sees it: 200 after a revalidation
    wire_status: int = 0  # as the server sent it: 304 for a revalidation (0: nothing on the network)
    from_cache: bool = False
    encoding: str = ""
    received: int = 0  # bytes from the network, headers included (0 from the cache)
    finished: bool = False


@dataclass
class Network:
    """Every request a tab makes, through a CDP session (Playwright's own events do not say whether
    a response came from the HTTP cache)."""

    page: PlaywrightPage
    transfers: dict[str, Transfer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cdp = self.page.context.new_cdp_session(self.page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", self._cached)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.responseReceivedExtraInfo", self._wire)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.send("Network.enable")

    def _sent(self, event: dict[str, Any]) -> None:
        self.transfers[event["requestId"]] = Transfer(event["request"]["url"], event.get("type", ""))

    def _cached(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.transfers:
            self.transfers[event["requestId"]].from_cache = True

    def _response(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer is None:
            return
        response = event["response"]
        transfer.status = response["status"]
        transfer.from_cache |= bool(response.get("fromDiskCache") or response.get("fromMemoryCache"))
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        transfer.encoding = headers.get("content-encoding", "")
        transfer.received = int(response.get("encodedDataLength", 0))

    def _wire(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.transfers:
            self.transfers[event["requestId"]].wire_status = int(event["statusCode"])

    def _data(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.transfers:
            self.transfers[event["requestId"]].received += int(event.get("encodedDataLength", 0))

    def _finished(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer is not None:
            transfer.received = int(event["encodedDataLength"])  # the total, headers included
            transfer.finished = True

    def take(self) -> list[Transfer]:
        taken = list(self.transfers.values())
        self.transfers.clear()
        return taken


def live_view_shown(page: PlaywrightPage) -> None:
    page.wait_for_function(
        "(document.querySelector('#live-power')?.textContent ?? '–') !== '–'"
        " && document.querySelector('#live-chart canvas') !== null"
        " && (document.querySelector('#today-kwh')?.textContent ?? '–') !== '–'",
        timeout=20000,
    )


def summary(transfers: list[Transfer]) -> str:
    network = [t for t in transfers if not t.from_cache]
    data = [t for t in network if urllib.parse.urlsplit(t.url).path.startswith("/api/")]
    return (
        f"{len(transfers)} requests, {len(network)} over the network, {sum(t.received for t in network) / 1000:.1f} kB"
        f" transferred ({len(data)} to the API: {sum(t.received for t in data) / 1000:.1f} kB)"
    )


def test_a_reload_of_the_live_view_transfers_only_the_data(browser: Browser, stack: Stack, ui_copy: Path) -> None:
    """First load of /#/live in a fresh tab (empty cache, logged in by cookie), then a reload. On the
    reload, index.html is revalidated (304) and every file of the page comes from the cache.

    The HTTP cache alone, service workers blocked: that is what a household on a plain-http LAN
    address gets (no secure context, no worker), and with a worker whether the reload goes through
    it would depend on how far its install got. The reload through the worker, which serves the
    files from its own cache, is tests/test_ui_offline_reload.py's."""
    tab = Page(browser, stack, service_workers="block")
    try:
        name, _, value = log_in(stack.url).partition("=")
        tab.context.add_cookies([{"name": name, "value": value, "url": stack.url}])
        network = Network(tab.page)
        tab.page.goto("/#/live")
        live_view_shown(tab.page)
        first = network.take()
        tab.page.reload()
        live_view_shown(tab.page)
        reload = network.take()
    finally:
        tab.close()
    print(f"\nfirst load: {summary(first)}\nreload:     {summary(reload)}")
    for label, transfers in (("first load", first), ("reload", reload)):
        for t in transfers:
            source = "cache" if t.from_cache else f"{t.received} B"
            status = t.wire_status or t.status
            print(f"  {label}: {status} {t.kind:11} {source:>8} {t.encoding:4} {t.url.removeprefix(stack.url)}")

    def files(transfers: list[Transfer]) -> list[Transfer]:
        return [t for t in transfers if urllib.parse.urlsplit(t.url).path.startswith("/ui/")]

    # The first load fetched the page's files from the network, gzipped: index.html's four (the icon
    # is the browser's own business) and every module of js/ (app.js imports them all, directly or not).
    fetched = {urllib.parse.urlsplit(t.url).path.split("/", 3)[3] for t in files(first)}
    assert fetched >= {"app.css", "vendor/uplot/uPlot.min.css", "vendor/uplot/uPlot.iife.min.js", "js/app.js"}
    modules = {p.relative_to(ui_copy).as_posix() for p in (ui_copy / "js").rglob("*.js")}
    assert {name for name in fetched if name.startswith("js/")} == modules
    for t in files(first):  # the icon, once loaded for the header, is the browser's tab icon from the cache
        assert (t.status, t.encoding) == (200, "gzip"), t
    assert {t.url for t in files(first)} == {t.url for t in files(first) if not t.from_cache}
    # The reload: the page itself revalidated, 304 ...
    documents = [t for t in reload if t.kind == "Document"]
    assert [(t.wire_status, t.from_cache) for t in documents] == [(304, False)], documents
    # ... and every file of the page from the cache, none from the network.
    assert {t.url for t in files(reload)} == {t.url for t in files(first)}
    assert [t for t in files(reload) if not t.from_cache] == []
    # Nothing asked for outside the versioned prefix but index.html and the API.
    for t in first + reload:
        path = urllib.parse.urlsplit(t.url).path
        assert path == "/" or path.startswith(("/ui/", "/api/")), t
