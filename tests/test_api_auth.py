"""Nobody gets data without logging in; the first-run install happens once; passwords are scrypt."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from citizenwatt_api import account, alerts, compare, export, household, legacy, pages, passwords, v2
from citizenwatt_api.app import create_app
from citizenwatt_api.passwords import hash_password, verify_password
from citizenwatt_api.settings import ApiSettings

ADMIN = {"login": "admin", "password": "correct horse battery"}


@pytest.fixture
def app_client(database_url: str) -> Iterator[TestClient]:
    # No broker in these tests: the radio settings publisher would only wait for one at shutdown.
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as client:
        yield client


def concrete(path: str) -> str:
    """A route template with plausible values in every parameter."""
    return re.sub(r"{[^}]+}", "1", path).replace("/get/1/", "/get/watts/")


def test_every_data_route_refuses_anonymous_requests(app_client: TestClient) -> None:
    open_paths = {
        "/healthz",
        "/install",
        "/login",
        "/logout",
        "/",
        "/docs",
        "/openapi.json",
        "/redoc",
        "/docs/oauth2-redirect",
        "/api/v2/session",
        "/api/v2/install",
        "/api/v2/login",
        "/api/v2/logout",
    }
    checked = 0
    routers = (
        legacy.router,
        pages.router,
        v2.router,
        compare.router,
        alerts.router,
        export.router,
        account.router,
        household.router,
    )
    for route in [r for router in routers for r in router.routes]:
        if not isinstance(route, APIRoute) or route.path in open_paths:
            continue
        for method in route.methods or ():
            response = app_client.request(method, concrete(route.path))
            assert response.status_code in (401, 405), (method, route.path, response.status_code)
            assert "data" not in response.json()
            checked += 1
    assert checked >= 30


def test_install_happens_once_and_then_login_works(app_client: TestClient, database_url: str) -> None:
    assert app_client.get("/install", follow_redirects=False).status_code == 200
    assert app_client.post("/install", data={"login": "a", "password": "short"}).status_code == 200  # form again
    assert app_client.post("/install", data=ADMIN, follow_redirects=False).status_code == 303
    cookie = app_client.cookies.get("cw_session")
    assert cookie and len(cookie) >= 40
    set_cookie = app_client.post("/login", data=ADMIN, follow_redirects=False).headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    app_client.cookies.clear()
    assert app_client.post("/install", data={"login": "mallory", "password": "12345678"}).status_code == 403
    assert app_client.get("/install", follow_redirects=False).status_code == 303
    assert app_client.post("/login", data={**ADMIN, "password": "wrong"}).status_code == 403
    assert app_client.get("/api/sensors").status_code == 401
    assert app_client.post("/api/sensors", data={**ADMIN, "password": "wrong"}).status_code == 403
    assert app_client.post("/api/sensors", data=ADMIN).json() == {"data": None}
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE login = 'admin'").fetchone()
    assert stored is not None and ADMIN["password"] not in stored[0] and stored[0].startswith("scrypt$16384$8$1$")


def test_logout_ends_the_session(app_client: TestClient) -> None:
    app_client.post("/install", data=ADMIN)
    assert app_client.get("/api/time").status_code == 200
    assert app_client.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    app_client.post("/logout", headers={"Origin": "http://testserver"})
    assert app_client.get("/api/time").status_code == 401


def test_scrypt_hashes_are_salted_and_verify() -> None:
    first, second = hash_password("pw-123456"), hash_password("pw-123456")
    assert first != second
    assert verify_password("pw-123456", first) and not verify_password("pw-123457", first)
    assert not verify_password("pw-123456", "sha256$garbage")


def test_admin_from_environment_and_from_the_cli(database_url: str) -> None:
    settings = ApiSettings(
        database_url=database_url, ui_dir="/nonexistent", admin_login="robot", admin_password="from-the-env-1"
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/time", data={"login": "robot", "password": "from-the-env-1"}).status_code == 200
    result = subprocess.run(
        [sys.executable, "-m", "citizenwatt_api", "create-admin", "--login", "ops"],
        input="from-stdin-pw\n",
        text=True,
        capture_output=True,
        env={**os.environ, "CW_DATABASE_URL": database_url},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with TestClient(create_app(ApiSettings(database_url=database_url, ui_dir="/nonexistent"))) as client:
        assert client.post("/api/time", data={"login": "ops", "password": "from-stdin-pw"}).status_code == 200


def test_settings_need_an_admin_and_valid_values(app_client: TestClient, database_url: str) -> None:
    app_client.post("/install", data=ADMIN)
    same = {"Origin": "http://testserver"}
    assert (
        app_client.post("/settings/night-window", data={"start": "25:00", "end": "06:00"}, headers=same).status_code
        == 400
    )
    assert app_client.post("/settings/provider", data={"provider_id": "77"}, headers=same).status_code == 404
    assert app_client.post("/settings/night-window", data={"start": "23:30", "end": "07:15"}, headers=same).json() == {
        "data": {"start": "23:30", "end": "07:15"}
    }
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (login, password_hash) VALUES ('guest', %s)", (hash_password("guest-pw-1"),))
    response = app_client.post(
        "/settings/provider", data={"provider_id": "2", "login": "guest", "password": "guest-pw-1"}
    )
    assert response.status_code == 403


def test_health_and_openapi(app_client: TestClient) -> None:
    health = app_client.get("/healthz").json()
    assert (health["status"], health["busy"], health["live_streams"]) == ("ok", False, 0)  # an idle api
    paths = app_client.get("/openapi.json").json()["paths"]
    assert "/api/{sensor}/get/{unit}/by_time/{t1}/{t2}/{step}" in paths
    assert app_client.get("/docs").status_code == 200


def test_repeated_failed_logins_are_throttled(app_client: TestClient) -> None:
    app_client.post("/install", data=ADMIN)
    app_client.cookies.clear()
    wrong = {**ADMIN, "password": "guess"}
    assert [app_client.post("/api/time", data=wrong).status_code for _ in range(5)] == [403] * 5
    throttled = app_client.post("/api/time", data=wrong)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    # Even the right password waits: the guesser must not learn it was right.
    assert app_client.post("/login", data=ADMIN).status_code == 429
    # Another login from the same address is counted separately.
    assert app_client.post("/api/time", data={"login": "other", "password": "x"}).status_code == 403


def test_api_tokens_work_until_revoked(app_client: TestClient) -> None:
    app_client.post("/install", data=ADMIN)
    same = {"Origin": "http://testserver"}
    created = app_client.post("/settings/tokens", data={"name": "home assistant"}, headers=same).json()["data"]
    token = created["token"]
    assert token.startswith("cw_") and len(token) > 40
    app_client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/api/time", headers=bearer).status_code == 200
    # A token is not a cookie: a data-changing POST with it needs no Origin.
    assert app_client.post("/api/1/insert/5/1790000000/0", headers=bearer).json()["data"] is False
    listed = app_client.get("/settings/tokens", headers=bearer).json()["data"]
    assert [(t["name"], t["revoked"]) for t in listed] == [("home assistant", False)]
    assert listed[0]["last_used_at"] is not None
    assert app_client.post(f"/settings/tokens/{created['id']}/revoke", headers=bearer).status_code == 200
    assert app_client.get("/api/time", headers=bearer).status_code == 403
    assert app_client.get("/api/time", headers={"Authorization": "Bearer cw_made-up"}).status_code == 403


def test_a_nul_byte_in_a_login_is_a_failed_login_not_a_crash(app_client: TestClient) -> None:
    # Found by schemathesis: PostgreSQL text cannot hold NUL, and the query used to fail with a 500.
    app_client.post("/install", data=ADMIN)
    assert app_client.post("/login", data={"login": "ad\x00min", "password": "x"}).status_code == 403


def test_a_verified_password_is_remembered_without_weakening_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    full_checks: list[str] = []
    real_verify = passwords.verify_password

    def counting_verify(password: str, stored: str) -> bool:
        full_checks.append(password)
        return real_verify(password, stored)

    monkeypatch.setattr(passwords, "verify_password", counting_verify)
    memo = passwords.VerifiedPasswords(max_entries=2)
    stored = hash_password("old password 1")
    assert memo.verify("old password 1", stored) and memo.verify("old password 1", stored)
    assert full_checks == ["old password 1"]  # the second call paid no scrypt
    # A wrong password always pays the full price and never matches.
    assert not memo.verify("old password 2", stored) and not memo.verify("old password 2", stored)
    assert full_checks.count("old password 2") == 2
    # A changed password is a new salted hash: the old password cannot match it, the new one must be
    # checked in full once.
    changed = hash_password("new password 1")
    assert not memo.verify("old password 1", changed)
    assert memo.verify("new password 1", changed) and memo.verify("new password 1", changed)
    assert full_checks.count("new password 1") == 1
    # Bounded: the least recently used hash is forgotten, and then checked in full again.
    memo.verify("third password", hash_password("third password"))
    assert memo.verify("old password 1", stored)
    assert full_checks.count("old password 1") == 3  # the first, the changed hash, and after forgetting


def test_form_field_clients_see_a_password_change_and_a_removal_at_once(
    app_client: TestClient, database_url: str
) -> None:
    app_client.post("/api/v2/install", json=ADMIN)
    assert app_client.post("/api/sensors", data=ADMIN).status_code == 200
    assert app_client.post("/api/sensors", data=ADMIN).status_code == 200  # remembered
    new = {"login": ADMIN["login"], "password": "a brand new password"}
    changed = app_client.post(
        "/api/v2/account/password",
        json={"current_password": ADMIN["password"], "new_password": new["password"]},
        headers={"Origin": "http://testserver"},
    )
    assert changed.status_code == 204
    assert app_client.post("/api/sensors", data=ADMIN).status_code == 403
    assert app_client.post("/api/sensors", data=new).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM sessions")
        conn.execute("DELETE FROM users WHERE login = %s", (ADMIN["login"],))
    assert app_client.post("/api/sensors", data=new).status_code == 403
