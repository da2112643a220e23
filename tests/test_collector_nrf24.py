"""The nRF24 collector: packets made with an independent AES implementation, and the service end to end."""

from __future__ import annotations

import json
import queue
import random
import struct
import threading
import time
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable
from citizenwatt_nrf24 import aes
from citizenwatt_nrf24.decoder import PacketRejected, ReplayGuard, SensorPacket, decode_packet, decrypt_block, parse_key
from citizenwatt_nrf24.service import receive_packets
from citizenwatt_nrf24.settings import Nrf24Settings
from tests.services import MqttObserver, aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")

DEFAULT_KEY = bytes(range(16))  # the firmware's default key, "0-1-2-...-15"


def encrypt(plaintext: bytes, key: bytes = DEFAULT_KEY) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(plaintext) + encryptor.finalize()


def packet(power: int, voltage: int, battery_mv: int, uptime_ms: int, key: bytes = DEFAULT_KEY) -> bytes:
    # The sensor's struct, little-endian: int16, int16, int16, uint32, int32 padding, int16 padding.
    return encrypt(struct.pack("<hhhIih", power, voltage, battery_mv, uptime_ms, 0, 0), key)


def test_keys_in_both_forms() -> None:
    assert parse_key("0-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15") == DEFAULT_KEY
    assert parse_key("000102030405060708090A0B0C0D0E0F") == DEFAULT_KEY
    for bad in ("0-1-2", "256-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15", "xyz"):
        with pytest.raises(ValueError, match="AES key"):
            parse_key(bad)


def test_decryption_matches_the_fips_197_example() -> None:
    # FIPS-197 appendix C.1: key 00..0f, plaintext 00112233..ff -> ciphertext 69c4e0d8...c55a.
    ciphertext = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert decrypt_block(ciphertext, DEFAULT_KEY) == bytes.fromhex("00112233445566778899aabbccddeeff")


def test_the_in_process_openssl_and_the_cryptography_package_decrypt_alike() -> None:
    """The collector decrypts with the interpreter's own libcrypto (no `cryptography` import, 7 MB of
    RSS); `cryptography` is the fallback. Both against FIPS-197 and against each other."""
    openssl, fallback = aes._openssl_in_process(), aes._cryptography()
    assert aes.backend_name() == "openssl"  # Debian's Python and this one both have it
    ciphertext = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert openssl(ciphertext, DEFAULT_KEY) == fallback(ciphertext, DEFAULT_KEY)
    for seed in range(200):
        key, block = random.Random(seed).randbytes(16), random.Random(-seed).randbytes(16)
        assert openssl(block, key) == fallback(block, key) == decrypt(block, key)
    for key, block in [(bytes(15), bytes(16)), (bytes(16), bytes(17)), (bytes(32), bytes(16))]:
        with pytest.raises(ValueError, match="16-byte"):
            aes.decrypt_block(block, key)


def test_a_backend_that_gets_the_known_answer_wrong_is_not_trusted() -> None:
    # The self-check decrypts FIPS-197 C.1's ciphertext (69c4e0d8...c55a under key 00..0f) and wants
    # 00112233..ff: both real backends give it; one that returns its input, or fails, does not.
    assert aes.passes_known_answer(aes._openssl_in_process())
    assert aes.passes_known_answer(aes._cryptography())
    assert not aes.passes_known_answer(lambda block, key: block)

    def failing(block: bytes, key: bytes) -> bytes:
        raise RuntimeError("OpenSSL could not decrypt the block")

    assert not aes.passes_known_answer(failing)


def decrypt(block: bytes, key: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(block) + decryptor.finalize()


def test_a_packet_decodes_to_its_fields() -> None:
    assert decode_packet(packet(1234, 230, 3300, 987_654), DEFAULT_KEY) == SensorPacket(1234, 230, 3300, 987_654)


def test_a_wrong_key_is_refused() -> None:
    block = packet(1234, 230, 3300, 987_654, key=bytes(16))
    result = decode_packet(block, DEFAULT_KEY)
    assert isinstance(result, PacketRejected) and "wrong AES key" in result.reason
    assert isinstance(decode_packet(block[:15], DEFAULT_KEY), PacketRejected)


def test_replays_are_refused_but_a_reboot_and_the_wrap_are_not() -> None:
    guard = ReplayGuard()
    assert guard.accept(SensorPacket(100, 230, 3300, 36_000_000)) is None  # 10 h of uptime
    replay = guard.accept(SensorPacket(100, 230, 3300, 36_000_000))
    assert replay is not None and "replayed" in replay.reason
    assert guard.accept(SensorPacket(100, 230, 3300, 35_000_000)) is not None  # an older packet
    assert guard.accept(SensorPacket(100, 230, 3300, 5_000)) is None  # rebooted 5 s ago
    assert guard.accept(SensorPacket(100, 230, 3300, 13_000)) is None
    guard.last_uptime_ms = 2**32 - 10_000  # 49.7 days: the counter wraps
    assert guard.accept(SensorPacket(100, 230, 3300, 2_000)) is None


class FakeRadio:
    """The hardware boundary: hands out queued payloads like an nRF24 with a full RX FIFO."""

    def __init__(self, blocks: list[bytes]) -> None:
        self.blocks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        for block in blocks:
            self.blocks.put(block)

    def receive(self) -> bytes | None:
        try:
            return self.blocks.get_nowait()
        except queue.Empty:
            return None


def run_collector(settings: Nrf24Settings, open_radio: object) -> tuple[CollectorRuntime, threading.Thread]:
    runtime = CollectorRuntime(settings, "nrf24")
    runtime.publisher.start()
    thread = threading.Thread(target=receive_packets, args=(runtime, open_radio), daemon=True)
    thread.start()
    return runtime, thread


def stop_collector(runtime: CollectorRuntime, thread: threading.Thread) -> None:
    runtime.stop_event.set()
    thread.join(10)
    runtime.publisher.stop()


def test_packets_reach_the_database(mosquitto: LocalMosquitto, database_url: str, tmp_path: Path) -> None:
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log"):
        good = [packet(500, 230, 3300, 10_000), packet(650, 230, 3290, 18_000), packet(700, 231, 3280, 26_000)]
        blocks = [good[0], packet(999, 230, 3300, 12_000, key=bytes(16)), good[1], good[1], good[2]]
        settings = Nrf24Settings(mqtt_url=mosquitto.url, sensor_id="kitchen-clamp")
        runtime, thread = run_collector(settings, lambda s: FakeRadio(blocks))
        try:
            wait_until(lambda: count_rows(database_url) == 3, message="three valid packets stored")
        finally:
            stop_collector(runtime, thread)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT power, voltage, battery FROM readings ORDER BY ts").fetchall()
    # The wrong-key packet and the replayed one are not readings.
    assert rows == [(500.0, 230.0, 3.3), (650.0, 230.0, 3.29), (700.0, 231.0, 3.28)]


def test_a_missing_radio_is_reported_once_and_retried(
    mosquitto: LocalMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = MqttObserver(mosquitto.url, "citizenwatt/#")
    attempts: list[float] = []

    def no_radio(settings: Nrf24Settings) -> FakeRadio:
        attempts.append(time.monotonic())
        raise DeviceUnavailable("nRF24L01+ on /dev/spidev0.0: no such device; is SPI enabled (raspi-config)?")

    settings = Nrf24Settings(mqtt_url=mosquitto.url, sensor_id="radio-less")
    runtime, thread = run_collector(settings, no_radio)
    try:
        watcher.wait_for(
            lambda ms: (
                ("citizenwatt/radio-less/status", b"offline", False) in ms
                or ("citizenwatt/radio-less/status", b"offline", True) in ms
            )
        )
        wait_until(lambda: len(attempts) >= 2, timeout=10, message="a second attempt")
    finally:
        stop_collector(runtime, thread)
    assert attempts[1] - attempts[0] >= 0.9  # backoff, not a crash loop
    assert sum("spidev0.0" in r.getMessage() for r in caplog.records) == 1
    assert not any(json.loads(p).get("power") == 0 for t, p, _ in watcher.messages if t.endswith("/reading"))
    watcher.close()


def test_a_wrong_key_says_so_and_goes_offline(mosquitto: LocalMosquitto, caplog: pytest.LogCaptureFixture) -> None:
    watcher = MqttObserver(mosquitto.url, "citizenwatt/#")
    wrong = [packet(400, 230, 3300, 10_000 + 8_000 * i, key=bytes(range(1, 17))) for i in range(5)]
    settings = Nrf24Settings(mqtt_url=mosquitto.url, sensor_id="wrong-key")
    runtime, thread = run_collector(settings, lambda s: FakeRadio(wrong))
    try:
        watcher.wait_for(lambda ms: [p for t, p, _ in ms if t == "citizenwatt/wrong-key/status"][-1:] == [b"offline"])
    finally:
        stop_collector(runtime, thread)
    assert any("check CW_NRF24_AES_KEY" in r.getMessage() for r in caplog.records)
    assert not any(t.endswith("/reading") for t, _, _ in watcher.messages)
    watcher.close()


def test_radio_settings_from_the_web_page_replace_the_environment_ones(mosquitto: LocalMosquitto) -> None:
    new_key, new_address = bytes(range(1, 17)), 0x1122334455
    watcher = MqttObserver(mosquitto.url, "citizenwatt/#")
    # What the api retains when the household saves the radio settings (key as 32 hex digits).
    config = {"v": 1, "aes_key": new_key.hex(), "address": new_address}
    watcher.publish("citizenwatt/garage/config", json.dumps(config), retain=True)
    opened: list[int] = []

    def open_radio(settings: Nrf24Settings) -> FakeRadio:
        opened.append(settings.nrf24_address)
        # Only the new pipe address hears the sensor, whose packets use the new key.
        on_new_pipe = [packet(321, 230, 3300, 10_000, key=new_key), packet(333, 230, 3300, 18_000, key=new_key)]
        return FakeRadio(on_new_pipe if settings.nrf24_address == new_address else [])

    settings = Nrf24Settings(mqtt_url=mosquitto.url, sensor_id="garage")
    runtime, thread = run_collector(settings, open_radio)
    try:
        watcher.wait_for(lambda ms: sum(t == "citizenwatt/garage/reading" for t, _, _ in ms) >= 2)
    finally:
        stop_collector(runtime, thread)
    powers = [json.loads(p)["power"] for t, p, _ in watcher.messages if t == "citizenwatt/garage/reading"]
    assert powers == [321.0, 333.0]
    assert opened[-1] == new_address and opened.count(new_address) == 1
    watcher.close()
