"""First-run install, login, logout and household settings (provider, night window)."""

from __future__ import annotations

import html
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from citizenwatt_common.night import parse_hhmm

from .account import create_first_admin, has_users
from .auth import (
    ApiError,
    User,
    admin_allowed_to_change,
    authenticate,
    create_token,
    current_user,
    end_session,
    same_origin,
    start_session,
    user_allowed_to_change,
)
from .db import get_conn
from .errors import ErrorCode
from .page_texts import error_text, page_language, text
from .tariffs import set_own_hours, today

router = APIRouter(tags=["account"])
Conn = psycopg.Connection[Any]

_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>CitizenWatt - {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0}}input{{width:100%;padding:.5rem;font-size:1rem}}
button{{padding:.6rem 1.2rem;font-size:1rem}}.error{{color:#b00020}}</style></head>
<body><h1>{title}</h1>{message}<form method="post" action="{action}">
<label>{login_label} <input name="login" autocomplete="username" required></label>
<label>{password_label} <input name="password" type="password" autocomplete="{pw_hint}" required
 minlength="{minlength}"></label>
<button type="submit">{button}</button></form></body></html>"""


def _page(request: Request, form: str, message: str = "", status_code: int = 200) -> HTMLResponse:
    """The /login or /install page (``form``) in the visitor's language, with a refusal above it."""
    lang = page_language(request)
    new_password = form == "install"
    body = _PAGE.format(
        lang=lang,
        title=html.escape(text(lang, f"{form}.title")),
        action=f"/{form}",
        button=html.escape(text(lang, f"{form}.button")),
        login_label=html.escape(text(lang, "field.login")),
        password_label=html.escape(text(lang, "field.password")),
        message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
        pw_hint="new-password" if new_password else "current-password",
        minlength=8 if new_password else 1,
    )
    return HTMLResponse(body, status_code=status_code)


def _refusal_page(request: Request, form: str, exc: ApiError, status_code: int | None = None) -> HTMLResponse:
    message = error_text(page_language(request), exc.code, str(exc.detail), exc.params)
    page = _page(request, form, message, status_code or exc.status_code)
    page.headers.update(exc.headers or {})
    return page


@router.get("/install", response_class=HTMLResponse)
def install_page(request: Request, conn: Conn = Depends(get_conn)) -> Response:
    if has_users(conn):
        return RedirectResponse("/login", status_code=303)
    return _page(request, "install")


@router.post("/install")
def install(
    request: Request,
    login: str = Form(...),
    password: str = Form(...),
    conn: Conn = Depends(get_conn),
) -> Response:
    try:
        user_id = create_first_admin(conn, login, password)
    except ApiError as exc:
        if exc.status_code != 400:
            raise
        return _refusal_page(request, "install", exc, status_code=200)  # the form again, as before
    response = RedirectResponse("/", status_code=303)
    start_session(conn, response, user_id, request.app.state.settings.session_days)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, conn: Conn = Depends(get_conn)) -> Response:
    if not has_users(conn):
        return RedirectResponse("/install", status_code=303)
    return _page(request, "login")


@router.post("/login")
def login(
    request: Request,
    login: str = Form(...),
    password: str = Form(...),
    conn: Conn = Depends(get_conn),
) -> Response:
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        user = authenticate(request, conn, login, password)
    except ApiError as exc:  # too many failures: the page says when to try again
        if wants_json or exc.status_code != 429:
            raise
        return _refusal_page(request, "login", exc)
    if user is None:
        if wants_json:
            return JSONResponse({"error": "Access forbidden", "code": ErrorCode.WRONG_CREDENTIALS}, status_code=403)
        return _refusal_page(
            request, "login", ApiError(403, "Wrong login or password.", code=ErrorCode.WRONG_CREDENTIALS)
        )
    response: Response = (
        JSONResponse({"data": {"login": user.login, "is_admin": user.is_admin}})
        if wants_json
        else RedirectResponse("/", status_code=303)
    )
    start_session(conn, response, user.id, request.app.state.settings.session_days)
    return response


@router.post("/logout")
def logout(request: Request, conn: Conn = Depends(get_conn)) -> Response:
    if request.cookies and not same_origin(request):
        raise ApiError(403, "Cross-site request refused", code=ErrorCode.CROSS_SITE_REFUSED)
    response = RedirectResponse("/login", status_code=303)
    end_session(conn, request, response)
    return response


@router.post("/settings/provider")
async def choose_provider(
    request: Request,
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> dict[str, Any]:
    fields = await _fields(request)
    try:
        provider_id = int(str(fields.get("provider_id")))
    except ValueError:
        raise ApiError(400, "provider_id must be an integer", code=ErrorCode.INVALID_PROVIDER) from None
    if conn.execute("SELECT 1 FROM energy_providers WHERE id = %s", (provider_id,)).fetchone() is None:
        raise ApiError(
            404, f"No provider {provider_id}", code=ErrorCode.UNKNOWN_PROVIDER, params={"provider": provider_id}
        )
    conn.execute("UPDATE household SET provider_id = %s", (provider_id,))
    return {"data": {"provider_id": provider_id}}


@router.post("/settings/night-window")
async def set_night_window(
    request: Request,
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> dict[str, Any]:
    """Readings stored from now on are tagged with the new window; stored ones keep their tariff.
    As PUT /api/v2/settings/night-window: a new version of the household's tariff from today."""
    fields = await _fields(request)
    start, end = str(fields.get("start") or ""), str(fields.get("end") or "")
    if not start and not end:
        with conn.transaction():
            conn.execute("UPDATE household SET night_start_minute = NULL, night_end_minute = NULL")
            set_own_hours(conn, None, today(request))
        return {"data": None}
    try:
        start_minute, end_minute = parse_hhmm(start), parse_hhmm(end)
    except ValueError as exc:
        raise ApiError(400, str(exc), code=ErrorCode.INVALID_NIGHT_WINDOW, params={"detail": str(exc)}) from None
    with conn.transaction():
        conn.execute("UPDATE household SET night_start_minute = %s, night_end_minute = %s", (start_minute, end_minute))
        set_own_hours(conn, [(start_minute, end_minute)], today(request))
    return {"data": {"start": start, "end": end}}


@router.post("/settings/tokens")
async def new_token(
    request: Request, user: User = Depends(user_allowed_to_change), conn: Conn = Depends(get_conn)
) -> dict[str, Any]:
    """An API token for a script or Home Assistant: ``Authorization: Bearer <token>``. Shown once."""
    name = str((await _fields(request)).get("name") or "").strip()
    if not name or len(name) > 100:
        raise ApiError(400, "name: 1 to 100 characters", code=ErrorCode.INVALID_TOKEN_NAME)
    token_id, token = create_token(conn, user.id, name)
    return {"data": {"id": token_id, "name": name, "token": token}}


@router.get("/settings/tokens")
def list_tokens(user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens WHERE user_id = %s ORDER BY id",
        (user.id,),
    ).fetchall()
    return {
        "data": [
            {
                "id": r[0],
                "name": r[1],
                "created_at": r[2].isoformat(),
                "last_used_at": r[3].isoformat() if r[3] else None,
                "revoked": r[4] is not None,
            }
            for r in rows
        ]
    }


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(
    token_id: int, user: User = Depends(user_allowed_to_change), conn: Conn = Depends(get_conn)
) -> dict[str, Any]:
    revoked = conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND user_id = %s AND revoked_at IS NULL",
        (token_id, user.id),
    ).rowcount
    if not revoked:
        raise ApiError(404, f"No active token {token_id}", code=ErrorCode.NO_ACTIVE_TOKEN, params={"token": token_id})
    return {"data": {"id": token_id, "revoked": True}}


async def _fields(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Body is not JSON", code=ErrorCode.BODY_NOT_JSON) from None
        return body if isinstance(body, dict) else {}
    return dict(await request.form())
