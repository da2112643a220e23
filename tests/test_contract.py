"""The MQTT reading contract: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import json

import pytest

from citizenwatt_common.contract import InvalidPayload, Nrf24Config, Reading, Rejection, Topics, parse_reading

GOOD = {
    "v": 1,
    "sensor": "ina219-solar",
    "kind": "ina219",
    "ts": 1732400000.125,
    "seq": 1842,
    "power": 41.7,
    "voltage": 12.9,
    "current": 3.23,
}


def test_the_spec_example_is_accepted_with_every_field() -> None:
    result = parse_reading("ina219-solar", json.dumps(GOOD).encode())
    assert isinstance(result, Reading)
    assert (result.sensor, result.kind, result.ts, result.seq, result.power) == (
        "ina219-solar",
        "ina219",
        1732400000.125,
        1842,
        41.7,
    )
    assert (result.voltage, result.current, result.battery) == (12.9, 3.23, None)


def test_integer_power_is_a_number_too() -> None:
    result = parse_reading("ina219-solar", json.dumps({**GOOD, "power": 42}).encode())
    assert isinstance(result, Reading) and result.power == 42.0


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({**GOOD, "power": "41.7"}).encode(), "power"),
        (json.dumps({**GOOD, "power": True}).encode(), "power"),
        (b'{"v": 1, "sensor": "ina219-solar", "kind": "ina219", "ts": 1732400000, "power": NaN}', "non-finite"),
        (b'{"v": 1, "sensor": "ina219-solar", "kind": "ina219", "ts": 1732400000, "power": Infinity}', "non-finite"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "ts"}).encode(), "ts"),
        (json.dumps({**GOOD, "v": 2}).encode(), "v"),
        (json.dumps({**GOOD, "kind": "toaster"}).encode(), "kind"),
        (json.dumps({**GOOD, "power": 1e9}).encode(), "power"),
        (json.dumps({**GOOD, "ts": 12.0}).encode(), "ts"),
        (json.dumps({**GOOD, "ts": 4e9}).encode(), "future"),
        (json.dumps({**GOOD, "sensor": "other"}).encode(), "does not match"),
        (json.dumps({**GOOD, "pad": "x" * 5000}).encode(), "exceeds"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason_part: str) -> None:
    result = parse_reading("ina219-solar", payload)
    assert isinstance(result, Rejection)
    assert reason_part in result.reason


def test_reading_topics_are_recognised_only_with_a_valid_sensor_id() -> None:
    topics = Topics("citizenwatt")
    assert topics.sensor_of("citizenwatt/ina219-solar/reading") == "ina219-solar"
    assert topics.sensor_of("citizenwatt/Upper/reading") is None
    assert topics.sensor_of("citizenwatt/a/b/reading") is None
    assert topics.sensor_of("citizenwatt/x/status") is None
    assert topics.sensor_of("other/x/reading") is None
    assert isinstance(parse_reading(None, json.dumps(GOOD).encode()), Rejection)


def test_alert_topics_sit_under_the_sensor_and_are_not_readings() -> None:
    topics = Topics("home/cw")
    assert topics.alert("fridge") == "home/cw/fridge/alert"
    assert topics.alert_event("fridge") == "home/cw/fridge/alert/event"
    # The aggregator subscribes to <base>/+/reading only: neither looks like a reading topic.
    assert topics.sensor_of(topics.alert("fridge")) is None
    assert topics.sensor_of(topics.alert_event("fridge")) is None


def test_payload_round_trips_and_leaves_out_absent_fields() -> None:
    reading = Reading(sensor="s1", kind="simulator", ts=1732400000.5, power=12.5)
    assert json.loads(reading.to_payload()) == {
        "v": 1,
        "sensor": "s1",
        "kind": "simulator",
        "ts": 1732400000.5,
        "power": 12.5,
    }


def test_a_reading_checks_itself_when_built_in_code_too() -> None:
    """Collectors build readings directly: the same checks as on the wire, every problem named."""
    reading = Reading(sensor="s1", kind="awox", ts=1732400000, power=3, voltage=230, state=True)
    assert (type(reading.ts), type(reading.power), type(reading.voltage)) == (float, float, float)
    with pytest.raises(ValueError) as caught:
        Reading(sensor="S 1", kind="toaster", ts=1.0, power=True, seq=-1, soc=101.0, state=1)  # type: ignore[arg-type]
    assert str(caught.value).split("; ") == [
        "sensor: expected an id matching [a-z0-9_-]{1,64}, got 'S 1'",
        "kind: expected one of nrf24, ina219, acs712, awox, simulator, got 'toaster'",
        "ts: 1.0 is before 2000-01-01 (a clock that was never set?)",
        "power: expected a number, got bool",
        "seq: expected a whole number 0..2^63-1, got -1",
    ]  # at most five
    with pytest.raises(ValueError, match="non-finite number nan"):
        Reading(sensor="s1", kind="awox", ts=1732400000.0, power=float("nan"))
    with pytest.raises(AttributeError):
        reading.power = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"v": True}, "v: expected schema version 1, got True"),
        ({"v": 1.0}, "v: expected schema version 1, got 1.0"),
        ({"seq": 1.0}, "seq: expected a whole number 0..2^63-1, got 1.0"),
        ({"seq": 2**63}, "seq: expected a whole number"),
        ({"state": 1}, "state: expected true or false, got 1"),
        ({"voltage": None, "battery": 100.5}, "battery: 100.5 is outside 0..100"),
        ({"energy": -1}, "energy: -1 is outside 0..1,000,000,000,000"),
        ({"power": 1e400}, "power: non-finite number inf"),
        ({"sensor": "ina219-solar\n"}, "sensor: expected an id"),
    ],
)
def test_strict_types_and_bounds_on_the_wire(changes: dict[str, object], reason: str) -> None:
    payload = json.dumps({**GOOD, **changes}).replace("Infinity", "1e400").encode()
    result = parse_reading("ina219-solar", payload)
    assert isinstance(result, Rejection) and reason in result.reason, result


def test_the_clock_mark_is_optional_accepted_and_kept() -> None:
    """``"clock": "unsynced"``: a collector that waited for NTP in vain says its clock was not
    synchronised. Accepted and kept through a round trip; any other value is refused; absent by default."""
    result = parse_reading("ina219-solar", json.dumps({**GOOD, "clock": "unsynced"}).encode())
    assert isinstance(result, Reading) and result.clock == "unsynced"
    assert json.loads(result.to_payload()) == {**GOOD, "clock": "unsynced"}
    plain = parse_reading("ina219-solar", json.dumps(GOOD).encode())
    assert isinstance(plain, Reading) and plain.clock is None and "clock" not in json.loads(plain.to_payload())
    refused = parse_reading("ina219-solar", json.dumps({**GOOD, "clock": "synced"}).encode())
    assert refused == Rejection("clock: expected 'unsynced', got 'synced'")


def test_missing_fields_are_listed_with_the_other_problems_and_unknown_fields_ignored() -> None:
    result = parse_reading("kitchen", b'{"v": 1, "sensor": "kitchen", "power": "lots", "colour": "red"}')
    assert result == Rejection("kind: missing, required; ts: missing, required; power: expected a number, got str")
    result = parse_reading("ina219-solar", json.dumps({**GOOD, "colour": "red"}).encode())
    assert isinstance(result, Reading) and json.loads(result.to_payload()) == GOOD
    assert parse_reading("ina219-solar", json.dumps({**GOOD, "v": None}).encode()) == Rejection(
        "v: expected schema version 1, got None"
    )


def test_the_nrf24_config_round_trips_and_refuses_what_the_collector_could_not_use() -> None:
    config = Nrf24Config(aes_key=" 000102030405060708090a0b0c0d0e0f ", address=0xE056D446D0)
    assert json.loads(config.to_payload()) == {
        "v": 1,
        "aes_key": "000102030405060708090a0b0c0d0e0f",
        "address": 0xE056D446D0,
    }
    assert Nrf24Config.from_payload(config.to_payload()) == config and config.key == bytes(range(16))
    for payload, reason in [
        (b'{"aes_key": "00", "address": 1}', "aes_key: the AES key must be 32 hex digits"),
        (b'{"aes_key": "000102030405060708090a0b0c0d0e0f", "address": 1099511627776}', "address: expected"),
        (b'{"aes_key": "000102030405060708090a0b0c0d0e0f", "address": "5"}', "address: expected"),
        (b'{"aes_key": "000102030405060708090a0b0c0d0e0f"}', "address: missing, required"),
        (b'{"aes_key": "000102030405060708090a0b0c0d0e0f", "address": 1, "x": 0}', "x: unknown field"),
        (b'{"v": 2, "aes_key": "000102030405060708090a0b0c0d0e0f", "address": 1}', "v: expected version 1"),
        (b"not json", "payload is not JSON"),
    ]:
        with pytest.raises(InvalidPayload, match=reason):
            Nrf24Config.from_payload(payload)
