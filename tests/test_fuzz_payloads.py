"""Property-based fuzz of reading payloads through the real broker and the running aggregator.

Every valid reading must be stored, every invalid message rejected with a reason and kept, and
the aggregator must keep running, whatever is interleaved.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citizenwatt_common.contract import Reading, Rejection, parse_reading
from tests.services import MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import LocalMosquitto

_sensor_numbers = itertools.count()

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-5000, max_value=5000)
junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def payloads(draw: st.DrawFn, sensor: str, index: int) -> tuple[bytes, bool]:
    """(payload, is_valid_by_construction) for the index-th message of a sensor."""
    base: dict[str, object] = {
        "v": 1,
        "sensor": sensor,
        "kind": "simulator",
        "ts": 1_790_000_000.0 + index,
        "power": draw(finite),
    }
    choice = draw(st.integers(min_value=0, max_value=7))
    if choice <= 2:
        return json.dumps(base).encode(), True
    if choice == 3:
        field = draw(st.sampled_from(["v", "sensor", "kind", "ts", "power"]))
        return json.dumps({k: v for k, v in base.items() if k != field}).encode(), False
    if choice == 4:
        field = draw(st.sampled_from(["v", "kind", "ts", "power", "seq", "voltage", "state"]))
        return json.dumps({**base, field: draw(junk_values)}, allow_nan=True).encode(), None  # type: ignore[return-value]
    if choice == 5:
        return draw(st.binary(max_size=64)), None  # type: ignore[return-value]
    if choice == 6:
        return json.dumps({**base, "sensor": "someone-else"}).encode(), False
    return json.dumps({**base, "padding": "x" * 5000}).encode(), False


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[tuple[MqttObserver, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    broker = LocalMosquitto(folder / "mq")
    broker.start()
    database_url = module_database_url
    env = {"CW_MQTT_URL": broker.url, "CW_DATABASE_URL": database_url, "CW_HEALTH_PORT": "0"}
    observer = MqttObserver(broker.url, "citizenwatt/_services/#", client_id="fuzzer")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, folder / "agg.log").start()
    observer.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
    yield observer, database_url
    assert aggregator.running, "the aggregator stopped during the fuzz"
    aggregator.stop()
    observer.close()
    broker.stop()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_valid_readings_stored_and_invalid_ones_kept(running: tuple[MqttObserver, str], data: st.DataObject) -> None:
    observer, database_url = running
    sensor = f"fuzz-{next(_sensor_numbers)}"
    count = data.draw(st.integers(min_value=1, max_value=12))
    messages = [data.draw(payloads(sensor, i)) for i in range(count)]
    # The expectation for messages built to be odd comes from the contract itself, checked
    # independently of the aggregator; fields built valid or invalid must agree with it.
    valid = 0
    for payload, by_construction in messages:
        verdict = parse_reading(sensor, payload)
        if by_construction is not None:
            assert isinstance(verdict, Reading) == by_construction, (payload, verdict)
        if isinstance(verdict, Reading):
            assert math.isfinite(verdict.power)
            valid += 1
        else:
            assert isinstance(verdict, Rejection) and verdict.reason
    rejected_before = count_rows(database_url, "SELECT count(*) FROM rejected_messages")
    for payload, _ in messages:
        observer.publish(f"citizenwatt/{sensor}/reading", payload)
    # A last, valid marker reading: once it is stored, everything before it was handled.
    marker = {"v": 1, "sensor": sensor, "kind": "simulator", "ts": time.time(), "power": 1.0}
    observer.publish(f"citizenwatt/{sensor}/reading", json.dumps(marker).encode())
    sql = "SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.key = %s"
    wait_until(lambda: count_rows(database_url, sql, (sensor,)) == valid + 1, message=f"{valid + 1} stored")
    rejected = count_rows(database_url, "SELECT count(*) FROM rejected_messages") - rejected_before
    assert rejected == count - valid
