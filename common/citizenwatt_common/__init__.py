"""Shared by every CitizenWatt service: the MQTT contract, settings, schema and energy arithmetic."""

from .deferred_import import defer_import

# Every service imports this package before paho-mqtt, which imports urllib.request for proxies it
# never reads here: 2.0 MB per process, imported only if something reads it (deferred_import.py).
defer_import("urllib.request")
