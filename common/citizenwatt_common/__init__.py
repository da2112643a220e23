"""Shared by every CitizenWatt service: the MQTT contract, settings, schema and energy arithmetic."""

from .deferred_import import defer_import

# Every service imports this package before paho-mqtt, which imports these two at load for paths
# never taken here (proxies through PySocks, WebSocket handshakes): 2.9 MB per process, imported
# only when something reads them (deferred_import.py).
defer_import("urllib.request")
defer_import("hashlib")
