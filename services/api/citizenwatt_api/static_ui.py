"""The web page's files, served from memory: gzipped once, cached for a year under a versioned URL.

The api reads the UI folder (services/ui, about 200 kB, 70 kB once gzipped) into memory and names
the whole tree by one hash of its contents. Every file is served at ``/ui/<hash>/<path>`` with
``Cache-Control: public, max-age=31536000, immutable``, so a reload fetches none of them again.
index.html alone stays at ``/``: ``no-cache`` with an ETag (a 304 when unchanged), its references
rewritten to the versioned prefix. The ES modules import each other by relative paths, so they
inherit the prefix without being rewritten.

One hash for the whole tree rather than one per file: a per-file hash would have to be written into
every ``import`` of the modules, which would mean rewriting JavaScript. The tree changes only with an
upgrade, after which fetching the whole page again (70 kB) costs little.

A URL with another version (a page loaded just before an upgrade asks for its modules after it, or
an unversioned URL such as ``/js/app.js``) is redirected (307, not cached) to the current version of
the same file; a path the tree does not hold is a 404. A redirect rather than the current file
served under the old URL: that URL is cached as immutable, and would hold the wrong file if the same
version came back (a downgrade). And a module redirected resolves its own imports from the URL it
was redirected to, so the page's shared modules (i18n.js and its language) stay one copy each.

The folder is looked at again (file sizes and modification times, a few dozen ``stat`` calls) each
time index.html is asked for, so an edited file gets a new URL without restarting the api.

The service worker (sw.js) is the other file outside the prefix: a worker's scope is the folder
of its URL, so it is served at ``/sw.js`` (scope ``/``), ``no-cache`` like index.html, with the
version and the versioned URLs of every file written into it. A new version of the page is thus a
new worker, which the browser installs by itself (it compares the script byte for byte); the worker
caches index.html and those files, serves index.html from that cache when a reload finds the api
not answering, and leaves the API's requests alone (services/ui/sw.js says how).

Compression is per file here and nowhere else: no middleware sits in front of the API, whose
server-sent events (``/api/v2/live``) must not be buffered.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

log = logging.getLogger(__name__)

PREFIX = "/ui/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
INDEX = "index.html"
WORKER = "sw.js"
WORKER_URL = f"/{WORKER}"
# In sw.js as written, replaced when it is served: the version, and the list of the files' URLs.
_WORKER_VERSION = '"@VERSION@"'
_WORKER_SHELL = '"@SHELL@"'

_PLACEHOLDER = """<!doctype html><html><head><meta charset="utf-8"><title>CitizenWatt</title></head>
<body><h1>CitizenWatt</h1><p>The API is running. <a href="/docs">API documentation</a>,
<a href="/install">first-run install</a>, <a href="/login">log in</a>.</p></body></html>"""

# Explicit for the page's own kinds of file (a module script must be served as JavaScript, whatever
# the machine's /etc/mime.types says); any other from the mimetypes table.
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
}
# src="..." and href="..." in index.html; only those naming a file of the tree are rewritten.
_REFERENCE = re.compile(r'(\s(?:src|href)=")([^"]+)(")')

Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None where gzip would not make it smaller
    media_type: str
    etag: str  # weak: the same for both encodings, which hold the same content


@dataclass(frozen=True)
class Snapshot:
    version: str
    signature: Signature
    assets: dict[str, Asset]  # by path relative to the folder, "js/app.js"; index.html and sw.js not among them
    index: Asset  # with its references rewritten to the versioned prefix
    worker: Asset | None  # sw.js with the version written in; None in a folder without one

    def url(self, name: str) -> str:
        return versioned_url(self.version, name)


def versioned_url(version: str, name: str) -> str:
    return f"{PREFIX}{version}/{name}"


def mount(app: FastAPI, folder: Path) -> None:
    """Serve the page from ``folder`` at ``/`` (after every API route), or a placeholder without it."""
    if (folder / INDEX).is_file():
        app.mount("/", StaticUI(folder), name="ui")
        return

    @app.get("/", include_in_schema=False)
    def placeholder() -> HTMLResponse:
        return HTMLResponse(_PLACEHOLDER)


def signature(folder: Path) -> Signature:
    """Each file's path, size and modification time: what changes when a file is edited."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if name.startswith("."):  # editors' swap files, .DS_Store
                continue
            path = Path(root, name)
            stat = path.stat()
            found.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def load(folder: Path) -> Snapshot:
    listing = signature(folder)
    contents = {name: (folder / name).read_bytes() for name, _, _ in listing}
    tree = hashlib.sha256()
    for name, body in contents.items():  # sorted by name, as the listing is
        tree.update(f"{name}\0{len(body)}\0".encode())
        tree.update(body)
    version = tree.hexdigest()[:16]
    assets = {name: _asset(body, _media_type(name)) for name, body in contents.items() if name not in (INDEX, WORKER)}
    html = _versioned(contents[INDEX].decode(), version, set(assets))
    worker = None
    if WORKER in contents:
        source = _worker_source(contents[WORKER].decode(), version, sorted(assets))
        worker = _asset(source.encode(), _MEDIA_TYPES[".js"])
    return Snapshot(version, listing, assets, _asset(html.encode(), _MEDIA_TYPES[".html"]), worker)


def _worker_source(source: str, version: str, names: list[str]) -> str:
    shell = ", ".join(json.dumps(versioned_url(version, name)) for name in names)
    return source.replace(_WORKER_VERSION, json.dumps(version)).replace(_WORKER_SHELL, shell)


def _versioned(html: str, version: str, names: set[str]) -> str:
    def rewrite(match: re.Match[str]) -> str:
        before, reference, after = match.groups()
        name = reference.removeprefix("./")
        return before + (versioned_url(version, name) if name in names else reference) + after

    return _REFERENCE.sub(rewrite, html)


def _asset(body: bytes, media_type: str) -> Asset:
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = f'W/"{hashlib.sha256(body).hexdigest()[:16]}"'
    return Asset(body, gzipped if len(gzipped) < len(body) else None, media_type, etag)


def _media_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: named with q > 0, or ``*`` with q > 0 and gzip unnamed."""
    qualities: dict[str, float] = {}
    for part in (accept_encoding or "").split(","):
        coding, _, parameters = part.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.strip().lower()] = quality
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


def _unchanged(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match compared weakly (RFC 9110 13.1.2), as a cache revalidating either encoding sends it."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def respond(asset: Asset, headers: Headers, cache_control: str, extra: dict[str, str] | None = None) -> Response:
    common = {"Cache-Control": cache_control, "ETag": asset.etag, **(extra or {})}
    if asset.gzipped is not None:
        common["Vary"] = "Accept-Encoding"
    if _unchanged(headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=common)
    if asset.gzipped is not None and accepts_gzip(headers.get("accept-encoding")):
        return Response(asset.gzipped, media_type=asset.media_type, headers={**common, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=common)


class StaticUI:
    """The ASGI app mounted at ``/``: index.html, the versioned files, redirects to them, else 404."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.snapshot = load(folder)
        log.info("web page %s: %d files, version %s", folder, len(self.snapshot.assets) + 1, self.snapshot.version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a websocket to a path no route took
            await WebSocketClose()(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        # Mounted at "/", so the path is the whole path.
        path = request.url.path
        if path in ("/", f"/{INDEX}"):
            await anyio.to_thread.run_sync(self.refresh)
            response = respond(self.snapshot.index, request.headers, REVALIDATE)
        elif path == WORKER_URL and self.snapshot.worker is not None:
            # The browser asks for it after each navigation: as for index.html, the folder is looked
            # at again, so an edited page is a new worker.
            await anyio.to_thread.run_sync(self.refresh)
            worker = self.snapshot.worker
            if worker is None:  # sw.js removed since
                raise HTTPException(404)
            response = respond(worker, request.headers, REVALIDATE, {"Service-Worker-Allowed": "/"})
        else:
            response = self._file(path, request)
        await response(scope, receive, send)

    def _file(self, path: str, request: Request) -> Response:
        snapshot = self.snapshot
        name = path.removeprefix("/")
        if path.startswith(PREFIX):
            version, _, name = path.removeprefix(PREFIX).partition("/")
            if version == snapshot.version and name in snapshot.assets:
                return respond(snapshot.assets[name], request.headers, IMMUTABLE)
        if name not in snapshot.assets:
            raise HTTPException(404)
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(snapshot.url(name) + query, status_code=307, headers={"Cache-Control": REVALIDATE})

    def refresh(self) -> None:
        """Read the folder again if a file changed since; on a failure keep serving what was read."""
        try:
            if signature(self.folder) != self.snapshot.signature:
                self.snapshot = load(self.folder)
                log.info("web page changed: version %s", self.snapshot.version)
        except (OSError, KeyError, UnicodeDecodeError) as exc:  # a file removed mid-read, no index.html
            log.warning("web page %s unreadable, still serving version %s: %s", self.folder, self.snapshot.version, exc)
