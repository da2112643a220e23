"""Who is asking: a session cookie (browsers) or login/password form fields (scripts).

Data-changing routes additionally refuse a cookie-authenticated request that does not come from
our own pages (Origin/Referer must name this host), so a link or a form on another site cannot
delete a household's history.
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from fastapi import Depends, HTTPException, Request, Response

from .db import get_conn
from .errors import ErrorCode
from .passwords import VerifiedPasswords, hash_password, verify_password

SESSION_COOKIE = "cw_session"
TOKEN_PREFIX = "cw_"  # noqa: S105 (a marker, not a secret)


@dataclass(frozen=True)
class User:
    id: int
    login: str
    is_admin: bool
    by_cookie: bool


class ApiError(HTTPException):
    """An HTTP error rendered as the legacy JSON envelope ``{"error": ...}``, plus a stable ``code``
    (and the ``params`` its message names) that the page translates: the English ``error`` text is
    for scripts and logs, the code is the contract.
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.code = str(code or _DEFAULT_CODES.get(status_code, ErrorCode.ERROR))
        self.params = params or {}


# What a status means when the raiser names nothing more precise.
_DEFAULT_CODES = {
    400: ErrorCode.INVALID_PARAMETERS,
    401: ErrorCode.AUTHENTICATION_REQUIRED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.TOO_MANY_REQUESTS,
    503: ErrorCode.UNAVAILABLE,
}


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_user(conn: psycopg.Connection[Any], login: str, password: str, is_admin: bool) -> int:
    row = conn.execute(
        "INSERT INTO users (login, password_hash, is_admin) VALUES (%s, %s, %s) RETURNING id",
        (login, hash_password(password), is_admin),
    ).fetchone()
    assert row is not None
    return int(row[0])


@functools.cache
def _unknown_login_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_credentials(
    conn: psycopg.Connection[Any], login: str, password: str, verified: VerifiedPasswords | None = None
) -> User | None:
    # No such login can exist (PostgreSQL text cannot even hold a NUL), but it is refused like any
    # unknown login, at the same cost: nothing in the time tells logins that exist from others.
    impossible = "\x00" in login or len(login) > 200
    row = (
        None
        if impossible
        else conn.execute("SELECT id, login, is_admin, password_hash FROM users WHERE login = %s", (login,)).fetchone()
    )
    if row is None:
        # One scrypt check, as for a wrong password: against a hash made once per process (making
        # a fresh one here as well would double the time and tell unknown logins apart).
        verify_password(password, _unknown_login_hash())
        return None
    matches = verified.verify(password, str(row[3])) if verified else verify_password(password, str(row[3]))
    if not matches:
        return None
    return User(int(row[0]), str(row[1]), bool(row[2]), by_cookie=False)


def start_session(conn: psycopg.Connection[Any], response: Response, user_id: int, days: int) -> None:
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=days)
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (token_hash(token), user_id, expires),
    )
    response.set_cookie(SESSION_COOKIE, token, max_age=days * 86400, httponly=True, samesite="lax", path="/")


def end_session(conn: psycopg.Connection[Any], request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        conn.execute("DELETE FROM sessions WHERE token_hash = %s", (token_hash(token),))
    response.delete_cookie(SESSION_COOKIE, path="/")


def session_user(conn: psycopg.Connection[Any], request: Request) -> User | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    row = conn.execute(
        "SELECT u.id, u.login, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_at > now()",
        (token_hash(token),),
    ).fetchone()
    return User(int(row[0]), str(row[1]), bool(row[2]), by_cookie=True) if row else None


class LoginThrottle:
    """At most ``attempts`` failed logins per client address and login within ``window`` seconds.

    Kept in memory: one api process serves a household, and a restart forgetting the counts is
    harmless next to what it blocks (guessing passwords at network speed). ``clock`` (seconds,
    only ever compared) is there for tests, which move time on instead of waiting five minutes.
    """

    def __init__(self, attempts: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def check(self, client: str, login: str) -> None:
        """Refuse (429) while the client has used up its attempts, saying in how many seconds the
        oldest failure leaves the window: a login then succeeds again if the password is right."""
        now = self.clock()
        recent = self._recent((client, login), now)
        if len(recent) >= self.attempts:
            retry = math.ceil(self.window - (now - recent[0]))
            raise ApiError(
                429,
                f"Too many failed logins: try again in {retry} s",
                {"Retry-After": str(retry)},
                code=ErrorCode.TOO_MANY_LOGINS,
                params={"retry_after": retry},
            )

    def failed(self, client: str, login: str) -> None:
        now = self.clock()
        if len(self._failures) > 10_000:  # many different logins tried: forget the expired ones
            for key in list(self._failures):
                self._recent(key, now)
        self._failures.setdefault((client, login), []).append(now)


def authenticate(request: Request, conn: psycopg.Connection[Any], login: str, password: str) -> User | None:
    """Check a login and password, refusing early (429) after repeated failures from one client."""
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else "unknown"
    throttle.check(client, login)
    user = check_credentials(conn, login, password, request.app.state.verified_passwords)
    if user is None:
        throttle.failed(client, login)
    return user


def _user_from_token(conn: psycopg.Connection[Any], request: Request) -> User | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(
        "UPDATE api_tokens t SET last_used_at = now() FROM users u"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.id = t.user_id RETURNING u.id, u.login, u.is_admin",
        (token_hash(token),),
    ).fetchone()
    if row is None:
        raise ApiError(403, "Access forbidden: unknown or revoked token", code=ErrorCode.UNKNOWN_TOKEN)
    # A token is sent on purpose by a script, never attached by a browser: no cross-site risk.
    return User(int(row[0]), str(row[1]), bool(row[2]), by_cookie=False)


def create_token(conn: psycopg.Connection[Any], user_id: int, name: str) -> tuple[int, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (%s, %s, %s) RETURNING id",
        (user_id, name, token_hash(token)),
    ).fetchone()
    assert row is not None
    return int(row[0]), token


async def current_user(request: Request, conn: psycopg.Connection[Any] = Depends(get_conn)) -> User:
    token_user = _user_from_token(conn, request)
    if token_user is not None:
        return token_user
    if request.method == "POST":
        form = await request.form()
        login, password = form.get("login"), form.get("password")
        if isinstance(login, str) and isinstance(password, str):
            user = authenticate(request, conn, login, password)
            if user is None:
                raise ApiError(403, "Access forbidden", code=ErrorCode.WRONG_CREDENTIALS)
            return user
    user = session_user(conn, request)
    if user is None:
        raise ApiError(401, "Authentication required: log in, or POST login and password")
    return user


# ``get_conn`` in its default (request) scope keeps its connection until the response is finished:
# for a stream (a CSV download, the live page's server-sent events) that is as long as the client
# keeps it open, and a few open pages would hold the whole pool. The same dependencies in
# "function" scope give the connection back as soon as the route function returns, before the
# first byte is streamed; streaming routes borrow a connection per query instead.
def released_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    yield from get_conn(request)


async def current_user_for_stream(
    request: Request, conn: psycopg.Connection[Any] = Depends(released_conn, scope="function")
) -> User:
    return await current_user(request, conn)


def same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.headers.get("host")


async def user_allowed_to_change(request: Request, user: User = Depends(current_user)) -> User:
    if user.by_cookie and not same_origin(request):
        raise ApiError(403, "Cross-site request refused: this route changes data", code=ErrorCode.CROSS_SITE_REFUSED)
    return user


async def admin_allowed_to_change(user: User = Depends(user_allowed_to_change)) -> User:
    if not user.is_admin:
        raise ApiError(403, "Administrator only", code=ErrorCode.ADMIN_ONLY)
    return user
