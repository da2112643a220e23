"""Collector for the AWOX SMP-B16 smart plug (Bluetooth LE): power meter and relay."""
