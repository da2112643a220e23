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
