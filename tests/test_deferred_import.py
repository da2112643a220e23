"""paho-mqtt's urllib.request and hashlib, imported only when read (citizenwatt_common/deferred_import.py).

Each case runs in a fresh interpreter: the tests' own process has long imported urllib.request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_fresh(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_collector_loads_paho_without_urllib_request_hashlib_and_what_they_drag_in() -> None:
    out = run_fresh(
        """
        import sys
        import citizenwatt_common.collector.runtime  # paho-mqtt, the publisher, the outbox
        import paho.mqtt.client
        print(sorted(m for m in ("http.client", "email.parser", "tempfile", "lzma", "_hashlib") if m in sys.modules))
        print(type(sys.modules["urllib.request"]).__name__, type(sys.modules["hashlib"]).__name__)
        """
    )
    assert out.splitlines() == ["[]", "_Deferred _Deferred"]


def test_the_first_read_imports_the_real_module_whichever_way_it_is_read() -> None:
    # The proxy comes from the environment, as urllib's own documentation says getproxies() reads it.
    out = run_fresh(
        """
        import sys, types
        import citizenwatt_common
        import urllib.request
        print(urllib.request.getproxies()["http"])
        real = sys.modules["urllib.request"]
        print(type(real) is types.ModuleType, urllib.request is real, "http.client" in sys.modules)
        from urllib.request import Request
        print(Request("http://example.org/x").host)
        import hashlib
        print(hashlib.sha256(b"abc").hexdigest(), type(sys.modules["hashlib"]) is types.ModuleType)
        """,
        http_proxy="http://proxy.example:3128",
    )
    # SHA-256("abc"): FIPS 180-2's first example.
    assert out.splitlines() == [
        "http://proxy.example:3128",
        "True True True",
        "example.org",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad True",
    ]


def test_a_from_import_before_any_read_gets_the_real_names() -> None:
    out = run_fresh(
        """
        import citizenwatt_common
        from urllib import request
        from urllib.request import proxy_bypass
        print(callable(proxy_bypass), request.proxy_bypass is proxy_bypass)
        """
    )
    assert out == "True True"


def test_threads_reading_it_first_at_once_share_one_real_module() -> None:
    out = run_fresh(
        """
        import sys, threading
        import citizenwatt_common
        import urllib.request
        barrier = threading.Barrier(16)
        seen = []
        def read():
            barrier.wait()
            seen.append(urllib.request.getproxies)
        threads = [threading.Thread(target=read) for _ in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(seen), len({id(f) for f in seen}), sys.modules["urllib.request"].getproxies is seen[0])
        """
    )
    assert out == "16 1 True"


def test_an_imported_module_is_left_alone() -> None:
    out = run_fresh(
        """
        import urllib.request, hashlib, sys
        before = sys.modules["urllib.request"], sys.modules["hashlib"]
        import citizenwatt_common
        print(sys.modules["urllib.request"] is before[0], sys.modules["hashlib"] is before[1])
        """
    )
    assert out == "True True"
