"""The FastAPI application: legacy API, account pages, settings, health, and the web page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from citizenwatt_common.schema import connect_migrated
from citizenwatt_common.store import Household, load_household

from . import account, alerts, compare, costs, export, household, legacy, pages, quarantine, static_ui, tariffs, v2
from .auth import ApiError, LoginThrottle, create_user
from .db import open_pool
from .dedicated_db import DedicatedConnection
from .errors import ErrorCode
from .health import health
from .limits import Admission
from .live_hub import LiveHub
from .passwords import VerifiedPasswords
from .radio_config import RadioConfigPublisher
from .settings import ApiSettings

log = logging.getLogger(__name__)


def _household(pool: ConnectionPool[psycopg.Connection[Any]]) -> Household:
    with pool.connection() as conn:
        return load_household(conn, with_plan=True)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No compression setting: the aggregator owns the storage policy.
        conn, _ = connect_migrated(settings.database_url, settings.max_gap_seconds)
        with conn:
            _ensure_admin(conn, settings)
        app.state.pool = open_pool(settings.database_url, settings.pool_size)
        # The live pages' hub and /healthz: on their own connection, off the pool (dedicated_db.py).
        app.state.dedicated_db = DedicatedConnection(settings.database_url)
        app.state.live_hub = LiveHub(app.state.dedicated_db)
        if settings.api_live_from_broker:
            pool = app.state.pool
            app.state.live_hub.listen_to_broker(settings, settings.zone, lambda: _household(pool))
        if settings.api_publish_radio_config:
            app.state.radio_publisher = RadioConfigPublisher(settings, app.state.pool)
            app.state.radio_publisher.start()
        try:
            yield
        finally:
            if app.state.radio_publisher is not None:
                app.state.radio_publisher.stop()
            await app.state.live_hub.close()
            await app.state.dedicated_db.close()
            app.state.pool.close()

    app = FastAPI(
        title="CitizenWatt",
        version="2.0.0",
        lifespan=lifespan,
        description="Home electricity monitor: the legacy CitizenWatt API and the modern one.",
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle()
    app.state.verified_passwords = VerifiedPasswords()
    app.state.radio_publisher = None
    app.state.admission = Admission()  # heavy requests, at most limits.HEAVY_SLOTS at once
    app.include_router(legacy.router)
    app.include_router(pages.router)
    app.include_router(v2.router)
    app.include_router(compare.router)
    app.include_router(alerts.router)
    app.include_router(export.router)
    app.include_router(account.router)
    app.include_router(household.router)
    app.include_router(tariffs.router)
    app.include_router(costs.router)
    app.include_router(quarantine.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        return await health(app)  # async, off the pool: see health.py

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (an unknown route, a wrong method) get the status's generic code.
        coded = exc if isinstance(exc, ApiError) else ApiError(exc.status_code, str(exc.detail))
        body: dict[str, Any] = {"error": exc.detail, "code": coded.code}
        if coded.params:
            body["params"] = coded.params
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = {"error": f"Invalid parameters: {_describe(exc)}", "code": ErrorCode.INVALID_PARAMETERS}
        field = _field(exc)
        return JSONResponse(body | ({"params": {"field": field}} if field else {}), status_code=400)

    @app.exception_handler(psycopg.DataError)
    async def unstorable_input(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # Text the database cannot hold (a NUL byte, say) is a bad parameter, not a server fault.
        return JSONResponse({"error": "Invalid parameters", "code": ErrorCode.INVALID_PARAMETERS}, status_code=400)

    @app.exception_handler(UnicodeEncodeError)
    async def unencodable_text(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        # JSON may carry a lone surrogate (\\ud800 escaped in JSON), which no UTF-8 text (nor the database) can hold.
        return JSONResponse(
            {"error": "Invalid parameters: text that is not valid Unicode", "code": ErrorCode.INVALID_TEXT},
            status_code=400,
        )

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        body = {"error": "Database unavailable, try again shortly", "code": ErrorCode.DATABASE_UNAVAILABLE}
        return JSONResponse(body, status_code=503)

    static_ui.mount(app, Path(settings.ui_dir))  # last: it answers every path no route took
    return app


def _field(exc: RequestValidationError) -> str | None:
    """The name of the first refused field (``start``), for the page's translated message."""
    errors = exc.errors()
    location = [str(part) for part in errors[0].get("loc", ())] if errors else []
    # The first part says where (query, path, body); a body refused whole has no field name.
    return location[-1] if len(location) > 1 else None


def _describe(exc: RequestValidationError) -> str:
    """The first problem, named by where it is: ``query.start: Input should be a valid date``."""
    errors = exc.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


def _ensure_admin(conn: psycopg.Connection[Any], settings: ApiSettings) -> None:
    """CW_ADMIN_LOGIN/CW_ADMIN_PASSWORD: create that admin at start (never overwrites a password)."""
    if not settings.admin_login or settings.admin_password is None:
        return
    if conn.execute("SELECT 1 FROM users WHERE login = %s", (settings.admin_login,)).fetchone():
        return
    create_user(conn, settings.admin_login, settings.admin_password.get_secret_value(), is_admin=True)
    log.info("created administrator %s from the environment", settings.admin_login)
