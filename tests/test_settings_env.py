"""Settings come from CW_* environment variables: without pydantic-settings for every service, without
pydantic at all for the collectors (a collector's memory, issue 11)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from citizenwatt_acs712.settings import Acs712Settings
from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_awox.settings import AwoxSettings
from citizenwatt_common.collector.runtime import CollectorSettings
from citizenwatt_common.envsettings import EnvSettings, MqttEnvSettings, SettingsError
from citizenwatt_common.settings import MqttSettings
from citizenwatt_ina219.settings import Ina219Settings
from citizenwatt_nrf24.settings import Nrf24Settings
from citizenwatt_simulator.__main__ import SimulatorSettings

REPO = Path(__file__).resolve().parents[1]
COLLECTORS = {
    "citizenwatt_simulator": SimulatorSettings,
    "citizenwatt_nrf24": Nrf24Settings,
    "citizenwatt_ina219": Ina219Settings,
    "citizenwatt_acs712": Acs712Settings,
    "citizenwatt_awox": AwoxSettings,
}


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
    with pytest.raises(SettingsError, match="CW_NRF24_AES_KEY: the AES key must be 32 hex digits"):
        Nrf24Settings.from_environment()


def test_collector_settings_are_parsed_and_checked_naming_each_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SENSOR_ID", "plug")
    monkeypatch.setenv("CW_AWOX_ANSWER_TIMEOUT_SECONDS", " 2.5 ")
    monkeypatch.setenv("CW_MQTT_URL", "mqtts://broker.lan")
    monkeypatch.setenv("CW_OUTBOX_PATH", "/var/lib/cw/outbox")
    plug = AwoxSettings.from_environment()
    assert (plug.awox_answer_timeout_seconds, plug.mqtt_host, plug.mqtt_port, plug.mqtt_tls) == (
        2.5,
        "broker.lan",
        8883,
        True,
    )
    assert (plug.outbox_path, plug.awox_address, plug.period_seconds) == ("/var/lib/cw/outbox", "", 8.0)
    monkeypatch.setenv("CW_NRF24_CHECK_PADDING", "off")
    monkeypatch.setenv("CW_INA219_MAX_EXPECTED_AMPS", "3")
    assert Nrf24Settings.from_environment().nrf24_check_padding is False
    assert Ina219Settings.from_environment().ina219_max_expected_amps == 3.0
    # Every problem at once, each with its variable (and never the password's value).
    monkeypatch.setenv("CW_SENSOR_ID", "Bad Id")
    monkeypatch.setenv("CW_PERIOD_SECONDS", "0")
    monkeypatch.setenv("CW_BUFFER_SIZE", "1e3")
    monkeypatch.setenv("CW_MQTT_URL", "http://broker")
    monkeypatch.setenv("CW_INA219_ADDRESS", "0x40")
    monkeypatch.setenv("CW_NRF24_CHECK_PADDING", "maybe")
    with pytest.raises(SettingsError) as caught:
        Ina219Settings.from_environment()
    assert caught.value.problems == [
        "CW_MQTT_URL='http://broker': CW_MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883",
        "CW_SENSOR_ID='Bad Id': must match [a-z0-9_-]{1,64}",
        "CW_PERIOD_SECONDS='0': must be more than 0",
        "CW_BUFFER_SIZE='1e3': expected a whole number",
        "CW_INA219_ADDRESS='0x40': expected a whole number",
    ]
    with pytest.raises(SettingsError, match="CW_NRF24_CHECK_PADDING='maybe': expected true or false"):
        Nrf24Settings.from_environment()
    monkeypatch.delenv("CW_SENSOR_ID")
    with pytest.raises(SettingsError, match="CW_SENSOR_ID is required"):
        CollectorSettings.from_environment()
    monkeypatch.setenv("CW_MQTT_URL", "mqtt://localhost")
    monkeypatch.setenv("CW_MQTT_PASSWORD", "s3cret")
    assert "s3cret" not in repr(SimulatorSettings(period_seconds=1, buffer_size=5))


def test_an_invalid_variable_stops_a_collector_with_a_message_naming_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "CW_SENSOR_ID": "radio", "CW_NRF24_CHANNEL": "200", "CW_PERIOD_SECONDS": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "citizenwatt_nrf24"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "CW_PERIOD_SECONDS='x': expected a number" in result.stderr
    assert "CW_NRF24_CHANNEL='200': must be at most 125" in result.stderr


def test_settings_are_immutable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SENSOR_ID", "kitchen")
    with pytest.raises(AttributeError, match="read-only"):
        CollectorSettings.from_environment().sensor_id = "other"  # type: ignore[misc]
    settings = Nrf24Settings.from_environment()
    changed = settings.replace(nrf24_address=5)
    assert (settings.nrf24_address, changed.nrf24_address, changed.sensor_id) == (0xE056D446D0, 5, "kitchen")
    with pytest.raises(SettingsError, match="CW_NRF24_CHANNEL"):
        settings.replace(nrf24_channel=-1)


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
    with pytest.raises(SettingsError, match="250, 1000 or 2000"):
        Nrf24Settings.from_environment()


@pytest.mark.parametrize("module", list(COLLECTORS))
def test_a_collector_never_imports_pydantic(module: str) -> None:
    """pydantic and its models were about 10 MB of a collector's 30 MB (issue 11; bench/memory.py measures)."""
    code = f"import sys, {module}.__main__"
    code += "; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_collectors_and_services_read_the_same_mqtt_variables() -> None:
    """The MQTT group is declared for pydantic (aggregator, api) and without it (collectors): kept equal."""
    light = {name: spec.default for name, (_, _, spec) in MqttEnvSettings.specs().items()}
    assert light == {name: field.default for name, field in MqttSettings.model_fields.items()}
    descriptions = {name: spec.description for name, (_, _, spec) in MqttEnvSettings.specs().items()}
    assert descriptions == {name: field.description for name, field in MqttSettings.model_fields.items()}


@pytest.mark.parametrize("settings_type", list(COLLECTORS.values()))
def test_every_collector_variable_is_in_the_readmes_with_its_default(settings_type: type[EnvSettings]) -> None:
    service = {
        SimulatorSettings: None,
        Nrf24Settings: "collector-nrf24",
        Ina219Settings: "collector-ina219",
        Acs712Settings: "collector-acs712",
        AwoxSettings: "collector-awox",
    }[settings_type]
    text = (REPO / "README.md").read_text()
    if service:
        text += (REPO / "services" / service / "README.md").read_text()
    for name, (_, _, spec) in settings_type.specs().items():
        variable = f"CW_{name.upper()}"
        rows = [line for line in text.splitlines() if line.startswith("|") and f"`{variable}`" in line]
        assert rows, f"{variable} has no row in the README's tables"
        if spec.default in (None, "") or spec.required or isinstance(spec.default, bool) or spec.secret:
            continue
        shown = {str(spec.default), f"{spec.default:g}" if isinstance(spec.default, float) else str(spec.default)}
        cells = " ".join(re.findall(r"`([^`]*)`", " ".join(rows)))
        assert any(value in cells.split() for value in shown), f"{variable}: default {spec.default!r} not in {rows}"
