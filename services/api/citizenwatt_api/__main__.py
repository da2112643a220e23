"""Start command: ``python -m citizenwatt_api`` (serves on CW_API_HOST:CW_API_PORT).

``python -m citizenwatt_api create-admin --login NAME`` creates an administrator for automated
deployments; the password comes from CW_ADMIN_PASSWORD or standard input.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from citizenwatt_common.logs import setup_logging
from citizenwatt_common.schema import connect_migrated

from .app import create_app
from .auth import create_user
from .settings import ApiSettings


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
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


if __name__ == "__main__":
    main()
