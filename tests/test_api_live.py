"""The live page's server-sent events must not keep a pooled connection for as long as a page is open."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

from tests.services import ServiceProcess
from tests.test_api_legacy import ADMIN
from tools.localstack import free_port, wait_for_port


def test_an_open_live_stream_leaves_the_pool_free(database_url: str, tmp_path: Path) -> None:
    """With one pooled connection, two open live pages and a request for the sensors all get answers.

    Were the stream's login dependency to keep its connection until the response ends, the first
    open page would hold the only connection and everything else would wait for the pool (503).
    """
    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_ADMIN_LOGIN": ADMIN["login"],
        "CW_ADMIN_PASSWORD": ADMIN["password"],
        "CW_POOL_SIZE": "1",
        "CW_API_PUBLISH_RADIO_CONFIG": "false",
    }
    server = ServiceProcess("citizenwatt_api", env, tmp_path / "api.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=60)
        login = urllib.request.Request(
            f"{base}/login", data=urllib.parse.urlencode(ADMIN).encode(), headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            cookie = response.headers["set-cookie"].split(";")[0]
        live = urllib.request.Request(f"{base}/api/v2/live", headers={"Cookie": cookie})
        with urllib.request.urlopen(live, timeout=10) as first, urllib.request.urlopen(live, timeout=10) as second:
            # Both streams have started (their first line is sent after the login check).
            assert first.readline() == b"retry: 2000\n"
            assert second.readline() == b"retry: 2000\n"
            sensors = urllib.request.Request(f"{base}/api/v2/sensors", headers={"Cookie": cookie})
            with urllib.request.urlopen(sensors, timeout=8) as response:
                assert response.status == 200
    finally:
        server.stop()
    assert "Traceback" not in server.log()
