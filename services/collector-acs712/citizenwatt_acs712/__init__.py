"""Collector for an ACS712 current sensor read by an Arduino over USB serial."""
