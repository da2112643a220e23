"""Login attempts as an attacker makes them: forged forwarding headers, and unknown logins
against known ones."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import ServiceProcess
from tools.localstack import free_port, wait_for_port

pytestmark = pytest.mark.backends("plain")
ADMIN = ("admin", "correct horse battery")


def start_api(database_url: str, log: Path, **extra: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_ADMIN_LOGIN": ADMIN[0],
        "CW_ADMIN_PASSWORD": ADMIN[1],
        "CW_API_PUBLISH_RADIO_CONFIG": "false",
        **extra,
    }
    api = ServiceProcess("citizenwatt_api", env, log).start()
    wait_for_port(port, timeout=60)
    return api, f"http://127.0.0.1:{port}"


def login(base: str, name: str, password: str, forwarded_for: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    body = json.dumps({"login": name, "password": password}).encode()
    request = urllib.request.Request(f"{base}/api/v2/login", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[str]:
    process, base = start_api(database_url, tmp_path / "api.log")
    yield base
    process.stop()


def test_a_forged_forwarding_header_does_not_reset_the_login_throttle(api: str) -> None:
    """5 failures per address and login, then 429 (README): a new X-Forwarded-For on each
    attempt must not make the attempts look like new clients when no proxy is configured."""
    statuses = [login(api, ADMIN[0], "wrong", forwarded_for=f"203.0.113.{i}") for i in range(1, 8)]
    assert statuses == [403] * 5 + [429] * 2
    assert login(api, ADMIN[0], ADMIN[1], forwarded_for="198.51.100.7") == 429


def test_a_configured_proxy_is_believed(database_url: str, tmp_path: Path) -> None:
    """With CW_TRUSTED_PROXIES=127.0.0.1 (the test's connections come from there), the header
    names the client: five failures from one forwarded address lock that address only."""
    process, base = start_api(database_url, tmp_path / "api.log", CW_TRUSTED_PROXIES="127.0.0.1")
    try:
        assert [login(base, ADMIN[0], "wrong", forwarded_for="203.0.113.1") for _ in range(6)] == [403] * 5 + [429]
        assert login(base, ADMIN[0], ADMIN[1], forwarded_for="203.0.113.2") == 200
    finally:
        process.stop()


# Each path a password is checked on, as (method, path, how the credentials travel).
LOGIN_PATHS = [("/api/v2/login", "json"), ("/login", "form"), ("/api/time", "form")]


def test_an_unknown_login_and_a_wrong_password_take_the_same_time_and_answer(database_url: str) -> None:
    """On every login path, interleaved samples of an unknown login and of a known login with a
    wrong password get the same status and body, and their median times are within 0.7 to 1.4 of
    each other (with the old code an unknown login cost two scrypt runs, a wrong password one: a
    ratio near 2). Medians of 30 interleaved samples each: one scrypt run is about 40 ms, far
    above the noise of a loaded machine, which affects both kinds alike. The throttle is lifted
    for the test (it would answer 429 after 5 attempts, the same for both)."""
    import statistics
    import time as clock

    from fastapi.testclient import TestClient

    from citizenwatt_api.app import create_app
    from citizenwatt_api.auth import LoginThrottle
    from citizenwatt_api.settings import ApiSettings

    settings = ApiSettings(
        database_url=database_url,
        admin_login=ADMIN[0],
        admin_password=ADMIN[1],
        api_publish_radio_config=False,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.login_throttle = LoginThrottle(attempts=10**9)
        for path, how in LOGIN_PATHS:

            def attempt(name: str, path: str = path, how: str = how) -> tuple[float, int, bytes]:
                credentials = {"login": name, "password": "not the password"}
                started = clock.perf_counter()
                if how == "json":
                    response = client.post(path, json=credentials)
                else:
                    response = client.post(path, data=credentials, headers={"Accept": "application/json"})
                return clock.perf_counter() - started, response.status_code, response.content

            attempt(ADMIN[0])  # warm-up: the first unknown-login check makes its hash once
            attempt("nobody-0")
            known, unknown = [], []
            for i in range(30):
                known.append(attempt(ADMIN[0]))
                unknown.append(attempt(f"nobody-{i}"))
            assert {(s, b) for _, s, b in known} == {(s, b) for _, s, b in unknown}, path
            assert len({(s, b) for _, s, b in known}) == 1, path
            ratio = statistics.median(t for t, _, _ in unknown) / statistics.median(t for t, _, _ in known)
            print(f"{path}: unknown/wrong median time ratio {ratio:.3f}")
            assert 0.7 < ratio < 1.4, (path, ratio)
