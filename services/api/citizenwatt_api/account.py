"""Account routes of the modern API, in JSON for the web page: session, install, login, password.

The HTML form routes (/install, /login, /logout) stay for scripts and old bookmarks; both kinds
share the same session cookie, throttle and password rules.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from .auth import (
    SESSION_COOKIE,
    ApiError,
    User,
    authenticate,
    create_user,
    end_session,
    same_origin,
    session_user,
    start_session,
    token_hash,
    user_allowed_to_change,
)
from .db import get_conn
from .errors import ErrorCode
from .passwords import hash_password, verify_password

router = APIRouter(prefix="/api/v2", tags=["account"])
Conn = psycopg.Connection[Any]
MIN_PASSWORD_LENGTH = 8


class Credentials(BaseModel):
    login: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class Account(BaseModel):
    login: str
    is_admin: bool


class SessionState(BaseModel):
    installed: bool = Field(description="false until the first administrator exists (the page shows install)")
    user: Account | None


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


def has_users(conn: Conn) -> bool:
    return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None


def create_first_admin(conn: Conn, login: str, password: str) -> int:
    """The install step: only while no user exists, and only one of two simultaneous visitors wins."""
    login = login.strip()
    if not login or len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(
            400,
            f"A login and a password of at least {MIN_PASSWORD_LENGTH} characters, please",
            code=ErrorCode.LOGIN_AND_PASSWORD_NEEDED,
            params={"min_length": MIN_PASSWORD_LENGTH},
        )
    with conn.transaction():
        conn.execute("LOCK TABLE users IN EXCLUSIVE MODE")
        if has_users(conn):
            raise ApiError(403, "Already installed: log in instead", code=ErrorCode.ALREADY_INSTALLED)
        return create_user(conn, login, password, is_admin=True)


@router.get("/session", response_model=SessionState)
def session(request: Request, conn: Conn = Depends(get_conn)) -> SessionState:
    """Whether the household is installed and who this browser is logged in as (no login needed)."""
    user = session_user(conn, request)
    return SessionState(
        installed=has_users(conn), user=Account(login=user.login, is_admin=user.is_admin) if user else None
    )


@router.post("/install", response_model=Account, status_code=201)
def install(body: Credentials, request: Request, response: Response, conn: Conn = Depends(get_conn)) -> Account:
    """Create the first administrator and log this browser in as them."""
    user_id = create_first_admin(conn, body.login, body.password)
    start_session(conn, response, user_id, request.app.state.settings.session_days)
    return Account(login=body.login.strip(), is_admin=True)


@router.post("/login", response_model=Account)
def login(body: Credentials, request: Request, response: Response, conn: Conn = Depends(get_conn)) -> Account:
    user = authenticate(request, conn, body.login, body.password)
    if user is None:
        raise ApiError(403, "Wrong login or password", code=ErrorCode.WRONG_CREDENTIALS)
    start_session(conn, response, user.id, request.app.state.settings.session_days)
    return Account(login=user.login, is_admin=user.is_admin)


@router.post("/logout", status_code=204)
def logout(request: Request, conn: Conn = Depends(get_conn)) -> Response:
    if request.cookies and not same_origin(request):
        raise ApiError(403, "Cross-site request refused", code=ErrorCode.CROSS_SITE_REFUSED)
    response = Response(status_code=204)
    end_session(conn, request, response)
    return response


@router.post("/account/password", status_code=204)
def change_password(
    body: PasswordChange,
    request: Request,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    """Change one's own password; every other session of this user is logged out."""
    row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,)).fetchone()
    if row is None or not verify_password(body.current_password, str(row[0])):
        raise ApiError(403, "The current password is wrong", code=ErrorCode.WRONG_CURRENT_PASSWORD)
    if len(body.new_password) < MIN_PASSWORD_LENGTH:
        raise ApiError(
            400,
            f"The new password needs at least {MIN_PASSWORD_LENGTH} characters",
            code=ErrorCode.PASSWORD_TOO_SHORT,
            params={"min_length": MIN_PASSWORD_LENGTH},
        )
    keep = request.cookies.get(SESSION_COOKIE)
    with conn.transaction():
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (hash_password(body.new_password), user.id))
        conn.execute(
            "DELETE FROM sessions WHERE user_id = %s AND token_hash <> %s",
            (user.id, token_hash(keep) if keep else b""),
        )
    return Response(status_code=204)
