"""The MQTT reading contract: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import json

import pytest

from citizenwatt_common.contract import Reading, Rejection, Topics, parse_reading

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
