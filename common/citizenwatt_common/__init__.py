"""Shared by every CitizenWatt service: the MQTT contract, settings, schema and energy arithmetic."""
