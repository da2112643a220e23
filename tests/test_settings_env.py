"""Settings come from CW_* environment variables without pydantic-settings (a collector's memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_common.collector.runtime import CollectorSettings
from citizenwatt_nrf24.settings import Nrf24Settings


def test_values_come_from_cw_variables_in_any_case_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SENSOR_ID", "kitchen")
    monkeypatch.setenv("cw_period_seconds", "2.5")
    monkeypatch.setenv("CW_MQTT_PASSWORD", "s3cret")
    monkeypatch.setenv("CW_NOT_A_SETTING", "ignored")
    settings = CollectorSettings.from_environment()
    assert (settings.sensor_id, settings.period_seconds) == ("kitchen", 2.5)
    assert settings.mqtt_secret() == "s3cret"
    assert CollectorSettings(sensor_id="garage").sensor_id == "garage"
    assert settings.buffer_size == 100_000  # default


def test_strings_are_parsed_and_checked_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_HA_DISCOVERY", "false")
    monkeypatch.setenv("CW_BATCH_SIZE", "42")
    settings = AggregatorSettings()
    assert settings.ha_discovery is False and settings.batch_size == 42
    monkeypatch.setenv("CW_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        AggregatorSettings()
    monkeypatch.setenv("CW_BATCH_SIZE", "10")
    monkeypatch.setenv("CW_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone"):
        AggregatorSettings()
    monkeypatch.setenv("CW_SENSOR_ID", "radio")
    monkeypatch.setenv("CW_NRF24_AES_KEY", "not a key")
    with pytest.raises(ValidationError, match="nrf24_aes_key"):
        Nrf24Settings.from_environment()


def test_settings_are_immutable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SENSOR_ID", "kitchen")
    with pytest.raises(ValidationError):
        CollectorSettings.from_environment().sensor_id = "other"  # type: ignore[misc]


def test_no_service_imports_pydantic_settings() -> None:
    """Its import alone cost each process 3 MB of RSS (README, On a Raspberry Pi: memory)."""
    code = (
        "import sys, citizenwatt_simulator.__main__, citizenwatt_aggregator.__main__, citizenwatt_api.__main__;"
        "print('pydantic_settings' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_radio_s_numeric_choices_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SENSOR_ID", "radio")
    monkeypatch.setenv("CW_NRF24_DATA_RATE_KBPS", "1000")
    monkeypatch.setenv("CW_NRF24_CRC_BITS", "8")
    settings = Nrf24Settings.from_environment()
    assert (settings.nrf24_data_rate_kbps, settings.nrf24_crc_bits) == (1000, 8)
    monkeypatch.setenv("CW_NRF24_DATA_RATE_KBPS", "500")
    with pytest.raises(ValidationError, match="250, 1000 or 2000"):
        Nrf24Settings.from_environment()
