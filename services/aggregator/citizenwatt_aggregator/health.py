"""A tiny HTTP /healthz for container health checks (stdlib: it is ten lines, not a framework)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_health(port: int, report: Callable[[], tuple[bool, bytes]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            healthy, body = report()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # health probes every few seconds would drown the log

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 (probed from outside the container)
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server
