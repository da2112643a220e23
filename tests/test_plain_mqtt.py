"""A collector on plain MQTT leaves the ssl module (and OpenSSL's libssl) out; one on mqtts:// keeps it.

Run in a fresh interpreter each time, as a collector's start command runs: the test process itself
has ssl loaded long ago.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = """
import sys
from citizenwatt_common.plain_mqtt import leave_out_ssl_unless_mqtts
leave_out_ssl_unless_mqtts()
import asyncio, urllib.request
import paho.mqtt.client as paho
from citizenwatt_common.mqtt import make_client
from citizenwatt_common.collector.settings import CollectorSettings
client = make_client(CollectorSettings.from_environment(), "probe")
libssl = any("libssl" in line for line in open("/proc/self/maps"))
print(sys.modules.get("ssl") is not None, libssl, client._ssl)
"""


def _probe(url_variable: str, url: str) -> str:
    env = {k: v for k, v in os.environ.items() if k.upper() != "CW_MQTT_URL"}
    env.update({url_variable: url, "CW_SENSOR_ID": "probe"})
    return subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@pytest.mark.parametrize("variable", ["CW_MQTT_URL", "cw_mqtt_url"])  # read in any case, as the settings read it
def test_plain_mqtt_leaves_ssl_out_and_still_makes_a_client(variable: str) -> None:
    assert _probe(variable, "mqtt://127.0.0.1:1883") == "False False False"


def test_mqtts_keeps_ssl_and_sets_up_tls() -> None:
    assert _probe("CW_MQTT_URL", "mqtts://127.0.0.1:8883") == "True True True"
