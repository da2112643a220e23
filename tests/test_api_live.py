"""The live page's server-sent events must not keep a pooled connection for as long as a page is open."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.services import api_with_one_connection
from tests.test_api_legacy import ADMIN


def test_an_open_live_stream_leaves_the_pool_free(database_url: str, tmp_path: Path) -> None:
    """With one pooled connection, two open live pages and a request for the sensors all get answers.

    Were the stream's login dependency to keep its connection until the response ends, the first
    open page would hold the only connection and everything else would wait for the pool (503).
    """
    with api_with_one_connection(database_url, tmp_path / "api.log", ADMIN) as (base, cookie, server):
        live = urllib.request.Request(f"{base}/api/v2/live", headers={"Cookie": cookie})
        with urllib.request.urlopen(live, timeout=10) as first, urllib.request.urlopen(live, timeout=10) as second:
            # Both streams have started (their first line is sent after the login check).
            assert first.readline() == b"retry: 2000\n"
            assert second.readline() == b"retry: 2000\n"
            sensors = urllib.request.Request(f"{base}/api/v2/sensors", headers={"Cookie": cookie})
            with urllib.request.urlopen(sensors, timeout=8) as response:
                assert response.status == 200
    assert "Traceback" not in server.log()
