"""Schemathesis against the api's own OpenAPI schema on a real server: no input makes it fail with 5xx."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from citizenwatt_common.contract import Reading
from tests.services import ServiceProcess
from tools.localstack import free_port, wait_for_port

ADMIN = {"login": "fuzz-admin", "password": "fuzz-password-1"}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[tuple[str, str]]:
    database_url = module_database_url
    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_ADMIN_LOGIN": ADMIN["login"],
        "CW_ADMIN_PASSWORD": ADMIN["password"],
        "CW_API_HOST": "127.0.0.1",
    }
    server = ServiceProcess("citizenwatt_api", env, tmp_path_factory.mktemp("api") / "api.log").start()
    wait_for_port(port, timeout=60)
    base = f"http://127.0.0.1:{port}"
    # Some data, so that queries have something to chew on.
    from zoneinfo import ZoneInfo

    import psycopg

    from citizenwatt_common.store import load_household, store_readings

    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        now = time.time()
        readings = [Reading(sensor="fuzzed", kind="simulator", ts=now - 8 * i, power=100.0 + i) for i in range(50)]
        store_readings(conn, readings, load_household(conn), ZoneInfo("Europe/Paris"))
    login = urllib.request.Request(
        f"{base}/login", data=urllib.parse.urlencode(ADMIN).encode(), headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(login, timeout=10) as response:
        cookie = response.headers["set-cookie"].split(";")[0]
    token_request = urllib.request.Request(
        f"{base}/settings/tokens",
        data=b'{"name": "fuzz"}',
        headers={"Content-Type": "application/json", "Cookie": cookie, "Origin": base},
    )
    with urllib.request.urlopen(token_request, timeout=10) as response:
        token = json.loads(response.read())["data"]["token"]
    yield base, token
    assert server.running, "the api died during the fuzz"
    server.stop()


def test_no_route_answers_5xx(api_server: tuple[str, str]) -> None:
    base, token = api_server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err (invalid schema) fails the test here

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
            )

        no_server_error()
        checked += 1
    assert checked >= 20
