"""Collector for the CitizenWatt radio sensor: nRF24L01+ packets, AES-128 encrypted."""
