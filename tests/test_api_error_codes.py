"""The api's refusals carry a stable code (issue 13, items 3 and 4): the login throttle says when
to try again (Retry-After, ``too_many_logins`` with ``retry_after``) and lets the right password in
once the wait is over; /login and /install speak the visitor's language; every code the api can
send has its words in the page's i18n.js, in English and in French.

The throttle's clock is injected (a number the test moves on), so no test waits five minutes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.auth import LoginThrottle
from citizenwatt_api.errors import ErrorCode
from citizenwatt_api.settings import ApiSettings

REPO = Path(__file__).resolve().parents[1]
API_SOURCE = REPO / "services/api/citizenwatt_api"
I18N = REPO / "services/ui/js/i18n.js"
ADMIN = {"login": "admin", "password": "correct horse battery"}
WRONG = {"login": "admin", "password": "a guess"}


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(database_url: str, clock: FakeClock) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    app = create_app(settings)
    app.state.login_throttle = LoginThrottle(attempts=5, window=300.0, clock=clock)
    with TestClient(app) as test_client:
        assert test_client.post("/api/v2/install", json=ADMIN).status_code == 201
        test_client.cookies.clear()
        yield test_client


def fail_five_times(client: TestClient) -> None:
    for _ in range(5):
        refused = client.post("/api/v2/login", json=WRONG)
        assert refused.status_code == 403
        assert refused.json()["code"] == "wrong_credentials"


def test_the_throttle_says_when_to_try_again_and_lets_the_right_password_in_after(
    client: TestClient, clock: FakeClock
) -> None:
    """Five failures at t=1000 fill the 300 s window. At t=1000 the oldest failure leaves it in
    300 s; at t=1120, in 300 - 120 = 180 s; at t=1299, in 1 s; at t=1300 it has left (a failure
    counts while less than 300 s old), four remain, and the right password is accepted."""
    fail_five_times(client)
    locked = client.post("/api/v2/login", json=ADMIN)  # even the right one: a guesser learns nothing
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "300"
    assert locked.json()["code"] == "too_many_logins"
    assert locked.json()["params"] == {"retry_after": 300}
    assert "error" in locked.json()  # the English text stays for scripts
    clock.now = 1120.0
    assert client.post("/api/v2/login", json=ADMIN).headers["retry-after"] == "180"
    clock.now = 1299.0
    later = client.post("/api/v2/login", json=ADMIN)
    assert later.status_code == 429 and later.json()["params"] == {"retry_after": 1}
    clock.now = 1300.0
    accepted = client.post("/api/v2/login", json=ADMIN)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["login"] == "admin"


def test_the_login_form_page_says_the_wait_in_the_chosen_language(client: TestClient, clock: FakeClock) -> None:
    """The server-rendered /login: the page's language from the cw_lang cookie (set by i18n.js),
    else Accept-Language. 300 s is 5 min; 30 s under a minute is said in seconds."""
    fail_five_times(client)
    client.cookies.set("cw_lang", "fr")
    page = client.post("/login", data=ADMIN)
    assert page.status_code == 429 and page.headers["retry-after"] == "300"
    assert 'lang="fr"' in page.text
    assert "Trop d'échecs de connexion : réessayez dans 5 min." in html.unescape(page.text)
    assert "Identifiant" in page.text and "Se connecter" in page.text
    client.cookies.clear()
    clock.now = 1270.0
    page = client.post("/login", data=ADMIN, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Too many failed logins: try again in 30 s." in page.text
    clock.now = 1300.0
    assert client.post("/login", data=ADMIN, follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("cookie", "accept_language", "expected"),
    [
        ("fr", "en-GB,en;q=0.9", "fr"),  # the page's own choice first
        (None, "fr-CA,fr;q=0.9,en;q=0.5", "fr"),
        (None, "de-DE, en;q=0.3, fr;q=0.8", "fr"),  # the best-ranked language we speak
        (None, "de-DE", "en"),
        ("xx", "fr", "fr"),  # an unknown cookie value is ignored
    ],
)
def test_server_pages_follow_the_language(
    client: TestClient, cookie: str | None, accept_language: str, expected: str
) -> None:
    title = {"en": "<h1>Log in</h1>", "fr": "<h1>Connexion</h1>"}[expected]
    if cookie:
        client.cookies.set("cw_lang", cookie)
    page = client.get("/login", headers={"Accept-Language": accept_language})
    assert title in page.text and f'lang="{expected}"' in page.text


def test_wrong_password_on_the_form_page_in_french(client: TestClient) -> None:
    page = client.post("/login", data=WRONG, headers={"Accept-Language": "fr"})
    assert page.status_code == 403 and "Identifiant ou mot de passe incorrect." in page.text


def test_refusals_carry_codes_and_params(client: TestClient) -> None:
    assert client.post("/api/v2/login", json=ADMIN).status_code == 200
    invalid = client.get("/api/v2/energy", params={"start": "2026-02-30", "bucket": "hour", "count": 24})
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "invalid_parameters" and invalid.json()["params"] == {"field": "start"}
    zone = client.get("/api/v2/energy", params={"start": "2026-02-01", "tz": "Mars/Olympus"})
    assert zone.json()["code"] == "unknown_time_zone" and zone.json()["params"] == {"zone": "Mars/Olympus"}
    sensor = client.get("/api/v2/costs", params={"start": "2026-02-01", "sensor": "999"})
    assert sensor.status_code == 404
    assert sensor.json()["code"] == "unknown_sensor" and sensor.json()["params"] == {"sensor": 999}
    # Starlette's own refusal of an unknown route gets the status's generic code.
    assert client.get("/api/v2/no-such-route").json() == {"error": "Not Found", "code": "not_found"}
    wrong = client.post(
        "/api/v2/account/password",
        json={"current_password": "not it", "new_password": "long enough"},
        headers={"Origin": "http://testserver"},
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_current_password"


def i18n_keys(language: str) -> set[str]:
    """The keys of one language's block of i18n.js's TEXTS (``  en: {`` up to the next ``  },``)."""
    source = I18N.read_text()
    block = re.search(rf"\n  {language}: \{{\n(.*?)\n  \}},", source, re.S)
    assert block, f"no {language} block in i18n.js"
    return set(re.findall(r'"([\w.]+)":', block.group(1)))


def test_every_code_the_api_can_send_is_registered() -> None:
    """A code written as a literal anywhere in the api (``code="x"``, ``"code": "x"``) must be one
    of ErrorCode's, so the registry is the whole list the translation test below walks."""
    registered = {code.value for code in ErrorCode}
    written: set[str] = set()
    for module in API_SOURCE.glob("*.py"):
        written |= literal_codes(module.read_text())
    assert written - registered == set()


def literal_codes(text: str) -> set[str]:
    return set(re.findall(r'\bcode\s*=\s*"(\w+)"', text)) | set(re.findall(r'"code":\s*"(\w+)"', text))


def test_the_code_scan_finds_both_spellings() -> None:
    sample = 'raise ApiError(400, "x", code="made_up")\nJSONResponse({"error": "y", "code": "other_one"})'
    assert literal_codes(sample) == {"made_up", "other_one"}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_code_has_a_translation(language: str) -> None:
    keys = i18n_keys(language)
    missing = sorted(code.value for code in ErrorCode if f"error.{code.value}" not in keys)
    assert missing == []
