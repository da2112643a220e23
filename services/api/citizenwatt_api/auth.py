"""Who is asking: a session cookie (browsers) or login/password form fields (scripts).

Data-changing routes additionally refuse a cookie-authenticated request that does not come from
our own pages (Origin/Referer must name this host), so a link or a form on another site cannot
delete a household's history.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from fastapi import Depends, HTTPException, Request, Response

from .db import get_conn
from .passwords import hash_password, verify_password

SESSION_COOKIE = "cw_session"


@dataclass(frozen=True)
class User:
    id: int
    login: str
    is_admin: bool
    by_cookie: bool


class ApiError(HTTPException):
    """An HTTP error rendered as the legacy JSON envelope ``{"error": ...}``."""


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_user(conn: psycopg.Connection[Any], login: str, password: str, is_admin: bool) -> int:
    row = conn.execute(
        "INSERT INTO users (login, password_hash, is_admin) VALUES (%s, %s, %s) RETURNING id",
        (login, hash_password(password), is_admin),
    ).fetchone()
    assert row is not None
    return int(row[0])


def check_credentials(conn: psycopg.Connection[Any], login: str, password: str) -> User | None:
    row = conn.execute("SELECT id, login, is_admin, password_hash FROM users WHERE login = %s", (login,)).fetchone()
    if row is None:
        # Spend the same time as a real check, so response times do not reveal which logins exist.
        verify_password(password, hash_password("timing"))
        return None
    if not verify_password(password, str(row[3])):
        return None
    return User(int(row[0]), str(row[1]), bool(row[2]), by_cookie=False)


def start_session(conn: psycopg.Connection[Any], response: Response, user_id: int, days: int) -> None:
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=days)
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (_token_hash(token), user_id, expires),
    )
    response.set_cookie(SESSION_COOKIE, token, max_age=days * 86400, httponly=True, samesite="lax", path="/")


def end_session(conn: psycopg.Connection[Any], request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        conn.execute("DELETE FROM sessions WHERE token_hash = %s", (_token_hash(token),))
    response.delete_cookie(SESSION_COOKIE, path="/")


def _user_from_cookie(conn: psycopg.Connection[Any], request: Request) -> User | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    row = conn.execute(
        "SELECT u.id, u.login, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_at > now()",
        (_token_hash(token),),
    ).fetchone()
    return User(int(row[0]), str(row[1]), bool(row[2]), by_cookie=True) if row else None


async def current_user(request: Request, conn: psycopg.Connection[Any] = Depends(get_conn)) -> User:
    if request.method == "POST":
        form = await request.form()
        login, password = form.get("login"), form.get("password")
        if isinstance(login, str) and isinstance(password, str):
            user = check_credentials(conn, login, password)
            if user is None:
                raise ApiError(403, "Access forbidden")
            return user
    user = _user_from_cookie(conn, request)
    if user is None:
        raise ApiError(401, "Authentication required: log in, or POST login and password")
    return user


def same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.headers.get("host")


async def user_allowed_to_change(request: Request, user: User = Depends(current_user)) -> User:
    if user.by_cookie and not same_origin(request):
        raise ApiError(403, "Cross-site request refused: this route changes data")
    return user


async def admin_allowed_to_change(user: User = Depends(user_allowed_to_change)) -> User:
    if not user.is_admin:
        raise ApiError(403, "Administrator only")
    return user
