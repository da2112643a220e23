"""The JSON account and settings routes the web page uses, and the radio settings' trip to a collector."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from tests.services import MqttObserver
from tools.localstack import LocalMosquitto

ADMIN = {"login": "admin", "password": "correct horse battery"}
SAME_ORIGIN = {"Origin": "http://testserver"}
ELSEWHERE = {"Origin": "http://evil.example"}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_install_once_then_session_login_and_logout(client: TestClient) -> None:
    assert client.get("/api/v2/session").json() == {"installed": False, "user": None}
    short = client.post("/api/v2/install", json={"login": "admin", "password": "short"})
    assert short.status_code == 400 and "8 characters" in short.json()["error"]
    created = client.post("/api/v2/install", json=ADMIN)
    assert created.status_code == 201 and created.json() == {"login": "admin", "is_admin": True}
    assert client.get("/api/v2/session").json() == {"installed": True, "user": {"login": "admin", "is_admin": True}}
    assert client.post("/api/v2/install", json={"login": "second", "password": "another password"}).status_code == 403
    assert client.post("/api/v2/logout", headers=ELSEWHERE).status_code == 403
    assert client.post("/api/v2/logout", headers=SAME_ORIGIN).status_code == 204
    assert client.get("/api/v2/session").json()["user"] is None
    assert client.get("/api/v2/sensors").status_code == 401
    wrong = client.post("/api/v2/login", json={**ADMIN, "password": "wrong password"})
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "Wrong login or password", "code": "wrong_credentials"}
    assert client.post("/api/v2/login", json=ADMIN).status_code == 200
    assert client.get("/api/v2/sensors").json() == []


def test_changing_the_password_logs_out_the_other_sessions(client: TestClient) -> None:
    client.post("/api/v2/install", json=ADMIN)
    other = TestClient(client.app)  # a second browser, same api
    assert other.post("/api/v2/login", json=ADMIN).status_code == 200
    change = {"current_password": ADMIN["password"], "new_password": "a much better passphrase"}
    assert client.post("/api/v2/account/password", json=change, headers=ELSEWHERE).status_code == 403
    password_url = "/api/v2/account/password"
    bad_current = client.post(password_url, json={**change, "current_password": "nope"}, headers=SAME_ORIGIN)
    assert bad_current.status_code == 403 and "current password" in bad_current.json()["error"]
    too_short = client.post(password_url, json={**change, "new_password": "1234567"}, headers=SAME_ORIGIN)
    assert too_short.status_code == 400
    assert client.post("/api/v2/account/password", json=change, headers=SAME_ORIGIN).status_code == 204
    assert client.get("/api/v2/session").json()["user"] == {"login": "admin", "is_admin": True}  # this one stays
    assert other.get("/api/v2/session").json()["user"] is None
    assert other.post("/api/v2/login", json=ADMIN).status_code == 403
    assert other.post("/api/v2/login", json={"login": "admin", "password": change["new_password"]}).status_code == 200


def test_household_settings_read_and_change(client: TestClient) -> None:
    client.post("/api/v2/install", json=ADMIN)
    settings = client.get("/api/v2/settings").json()
    assert settings["night_window"] is None and settings["radios"] == []
    assert settings["online_seconds"] == 120  # the limit the web page shares with /api/v2/sensors
    prices = {p["name"]: (p["day_euros_per_kwh"], p["night_euros_per_kwh"]) for p in settings["providers"]}
    # The seeded EDF Tarif Bleu prices of 2026-02-01 (EUR/kWh, tax included).
    assert prices == {"EDF Tarif Bleu - Base": (0.194, 0.194), "EDF Tarif Bleu - Heures creuses": (0.2065, 0.1579)}
    assert settings["provider_id"] == min(p["id"] for p in settings["providers"])

    window = client.put("/api/v2/settings/night-window", json={"start": "22:30", "end": "06:00"}, headers=SAME_ORIGIN)
    assert window.json() == {"start": "22:30", "end": "06:00"}
    bad = client.put("/api/v2/settings/night-window", json={"start": "25:00", "end": "06:00"}, headers=SAME_ORIGIN)
    assert bad.status_code == 400 and "body.start" in bad.json()["error"] and "HH:MM" in bad.json()["error"]
    assert client.get("/api/v2/settings").json()["night_window"] == {"start": "22:30", "end": "06:00"}
    cross_site = client.put("/api/v2/settings/night-window", json={"start": "01:00", "end": "02:00"}, headers=ELSEWHERE)
    assert cross_site.status_code == 403
    assert client.put("/api/v2/settings/night-window", headers=SAME_ORIGIN).json() is None
    assert client.get("/api/v2/settings").json()["night_window"] is None

    hc = next(p["id"] for p in settings["providers"] if p["name"].endswith("Heures creuses"))
    assert client.put("/api/v2/settings/provider", json={"provider_id": hc}, headers=SAME_ORIGIN).status_code == 200
    assert client.get("/api/v2/settings").json()["provider_id"] == hc
    assert client.put("/api/v2/settings/provider", json={"provider_id": 999}, headers=SAME_ORIGIN).status_code == 404


def test_radio_settings_are_checked_stored_and_never_shown(client: TestClient) -> None:
    client.post("/api/v2/install", json=ADMIN)
    for key, address in [("not a key", "0xE056D446D0"), ("00" * 15, "0xE056D446D0"), ("00" * 16, "0x10000000000")]:
        body = {"sensor": "citizenwatt", "aes_key": key, "address": address}
        assert client.put("/api/v2/settings/radio", json=body, headers=SAME_ORIGIN).status_code == 400, body
    bad_id = {"sensor": "Bad Id", "aes_key": "00" * 16, "address": "0x1"}
    assert client.put("/api/v2/settings/radio", json=bad_id, headers=SAME_ORIGIN).status_code == 400
    secret = "0-1-2-3-4-5-6-7-8-9-10-11-12-13-14-99"
    body = {"sensor": "citizenwatt", "aes_key": secret, "address": "e056d446d0"}
    saved = client.put("/api/v2/settings/radio", json=body, headers=SAME_ORIGIN)
    assert saved.json() == {"sensor": "citizenwatt", "address": "0xE056D446D0", "delivered": False}  # no broker
    shown = client.get("/api/v2/settings")
    assert [(r["sensor"], r["address"], r["key_set"]) for r in shown.json()["radios"]] == [
        ("citizenwatt", "0xE056D446D0", True)
    ]
    assert "14-99" not in shown.text


def test_radio_settings_are_retained_on_the_broker_and_republished(
    database_url: str, mosquitto: LocalMosquitto
) -> None:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", mqtt_url=mosquitto.url)
    body = {"sensor": "citizenwatt", "aes_key": "000102030405060708090a0b0c0d0e0f", "address": "0xE056D446D0"}
    expected = {"v": 1, "aes_key": "000102030405060708090a0b0c0d0e0f", "address": 0xE056D446D0}
    with TestClient(create_app(settings)) as client:
        client.post("/api/v2/install", json=ADMIN)
        observer = MqttObserver(mosquitto.url, "citizenwatt/+/config")
        # The api may still be connecting: saving again is what a user would do, and is idempotent.
        saved = client.put("/api/v2/settings/radio", json=body, headers=SAME_ORIGIN).json()
        observer.wait_for(lambda ms: len(ms) >= 1)
        topic, payload, _ = observer.messages[0]
        assert topic == "citizenwatt/citizenwatt/config" and json.loads(payload) == expected
        assert saved["delivered"] in (True, False)
    # The broker forgets it (a wiped volume); the next api start publishes it again.
    observer.publish("citizenwatt/citizenwatt/config", b"", retain=True)
    observer.close()
    with TestClient(create_app(settings)):
        late = MqttObserver(mosquitto.url, "citizenwatt/+/config", "late")
        late.wait_for(lambda ms: any(p for _, p, _ in ms))
        assert json.loads(next(p for _, p, _ in late.messages if p)) == expected
        late.close()
