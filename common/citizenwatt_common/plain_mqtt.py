"""Leaving the ``ssl`` module out of a collector that talks plain MQTT.

paho-mqtt, asyncio and urllib import ``ssl`` only if they can, for TLS connections. Loading it
maps and initialises OpenSSL's libssl: about 2.8 MB of a collector's RSS, whose bound is 30 MB
(issue 11; the AWOX one, with asyncio and bleak, was at 30.1). A collector whose CW_MQTT_URL is
``mqtt://`` never opens a TLS connection, so its start command marks the module absent before
importing them; with ``mqtts://`` nothing changes. Only the collectors' start commands call this:
the api's server and the test suite import ``ssl`` unconditionally.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from .envsettings import environment_values


def leave_out_ssl_unless_mqtts() -> None:
    if "ssl" in sys.modules:
        return  # already loaded by someone: nothing to save
    url = environment_values(["mqtt_url"]).get("mqtt_url", "")  # read as the settings read it
    if urlsplit(url.strip()).scheme == "mqtts":
        return
    # A None entry makes ``import ssl`` raise ImportError, which those modules expect and handle.
    sys.modules["ssl"] = None  # type: ignore[assignment]
