"""Schemathesis against the api's own OpenAPI schema on a real server: no input makes it fail with 5xx."""

from __future__ import annotations

import json
import time
import urllib.error
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


# Values a random generator seldom draws but a script or an attacker sends: subnormal, huge, signed
# zero, non-finite, an integer past 64 bits, text past every limit, a lone surrogate (sent
# percent-encoded as its WTF-8 bytes, which are not UTF-8).
EXTREME_TEXT = [
    "1e-320",
    "5e-324",
    "-0",
    "1e308",
    "1.8e308",
    "-1.8e308",
    "NaN",
    "Infinity",
    "-inf",
    "18446744073709551616",
    "-9223372036854775809",
    "9" * 400,
    "0x10",
    "",
    "%ED%A0%80",
    "%00",
]
EXTREME_JSON = [
    1e-320,
    5e-324,
    -0.0,
    1e308,
    float("inf"),
    float("nan"),
    2**64,
    -(2**63) - 1,
    "\ud800",
    "\x00",
    "a" * 20_000,
]
# A valid value for every path parameter, so an extreme value in one parameter reaches the code
# behind the others' validation.
VALID_PATH = {
    "sensor": "1",
    "sensor_id": "1",
    "unit": "watts",
    "t1": "0",
    "t2": "1000",
    "step": "100",
    "id1": "1",
    "id2": "2",
    "timestamp": "1",
    "value": "1",
    "night_rate": "0",
    "consumption": "1",
    "tariff": "1",
    "day": "2026-01-01",
    "valid_from": "2026-01-01",
    "tariff_id": "1",
    "token_id": "1",
}
VALID_QUERY = {"since": "0", "start": "2026-01-01", "period": "day", "bucket": "day", "with": "previous"}


def _send(base: str, token: str, method: str, path: str, query: dict[str, str], body: bytes | None) -> tuple[int, str]:
    url = base + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:200].decode(errors="replace")


def _path_with(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _body_variants(schema: dict[str, Any], spec: dict[str, Any]) -> Iterator[bytes]:
    """The operation's JSON body with one top-level field at a time set to each extreme value."""
    ref = schema.get("$ref", "")
    model = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema
    fields = list(model.get("properties", {}))
    for field in fields:
        for value in EXTREME_JSON:
            body = {name: "1" for name in fields} | {field: value}
            yield json.dumps(body).encode()


def test_extreme_values_in_every_parameter_never_answer_5xx(api_server: tuple[str, str]) -> None:
    """Each path, query and top-level body field of every operation, one at a time, gets each
    extreme value while the others stay valid: the answer is a 4xx (or a 2xx), never a 5xx."""
    base, token = api_server
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
        spec = json.loads(response.read())
    failures: list[str] = []
    sent = 0
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            path_values = {p["name"]: VALID_PATH.get(p["name"], "1") for p in params if p["in"] == "path"}
            query_values = {p["name"]: VALID_QUERY.get(p["name"], "1") for p in params if p["in"] == "query"}
            targets = [(p["in"], p["name"]) for p in params if p["in"] in ("path", "query")]
            for where, name in targets:
                for raw in EXTREME_TEXT:
                    value = raw if "%" in raw else urllib.parse.quote(raw, safe="")
                    path = _path_with(template, path_values | ({name: value} if where == "path" else {}))
                    query = query_values | ({name: value} if where == "query" else {})
                    if where == "path" and not value:
                        continue  # an empty path segment is another route, not this one
                    status, text = _send(base, token, method, path, query, None)
                    sent += 1
                    if status >= 500:
                        failures.append(f"{method.upper()} {path}?{query}: {status} {text}")
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                path = _path_with(template, path_values)
                for body in _body_variants(content["application/json"]["schema"], spec):
                    status, text = _send(base, token, method, path, query_values, body)
                    sent += 1
                    if status >= 500:
                        failures.append(f"{method.upper()} {path} {body[:80]!r}: {status} {text}")
    assert sent > 1000, sent
    assert not failures, "\n".join(failures[:30])
