"""Start command: ``python -m citizenwatt_api`` (serves on CW_API_HOST:CW_API_PORT).

``python -m citizenwatt_api create-admin --login NAME`` creates an administrator for automated
deployments; the password comes from CW_ADMIN_PASSWORD or standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from citizenwatt_common.logs import setup_logging
from citizenwatt_common.schema import connect_migrated

from .app import create_app
from .auth import create_user
from .settings import ApiSettings

SHUTDOWN_GRACE_SECONDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m citizenwatt_api")
    commands = parser.add_subparsers(dest="command")
    admin = commands.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("--login", required=True)
    args = parser.parse_args()
    settings = ApiSettings()
    setup_logging(settings.log_level)
    if args.command == "create-admin":
        password = os.environ.get("CW_ADMIN_PASSWORD") or sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            sys.exit("the password must have at least 8 characters")
        conn, _ = connect_migrated(settings.database_url, settings.max_gap_seconds)
        with conn:
            create_user(conn, args.login, password, is_admin=True)
        print(f"administrator {args.login} created")
        return
    # uvicorn handles SIGTERM/SIGINT: it finishes in-flight requests, then runs the lifespan exit.
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: a forged header from any
    # local process would then pick the address the login throttle counts attempts by.
    proxies = [address.strip() for address in settings.trusted_proxies.split(",") if address.strip()]
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        # Whatever still runs after this grace is cancelled (docker stop kills after 10 s).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    # Everything built so far (modules, the app, its routes) lives as long as the process: out of
    # the collector's sight, a full collection only walks what requests leave behind, and the one
    # after each heavy request (limits.give_back_memory) costs a few ms instead of 16 or more.
    gc.collect()
    gc.freeze()
    ApiServer(config, app).run()


class ApiServer(uvicorn.Server):
    """Ends the open live streams as soon as a stop is asked: a stream never ends by itself, and
    uvicorn waits for every response to end, so one open page kept the api from stopping."""

    def __init__(self, config: uvicorn.Config, api: FastAPI) -> None:
        super().__init__(config)
        self.api = api

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        hub = getattr(self.api.state, "live_hub", None)  # set once the app has started
        if hub is not None:
            # A signal handler runs between two steps of the event loop: the hub is changed on the loop.
            asyncio.get_running_loop().call_soon_threadsafe(hub.end_streams)


if __name__ == "__main__":
    main()
