"""The Pi's way in must stay valid: the compose file, the Dockerfiles it names, the broker config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_docker_compose_file_is_valid() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is needed to validate docker-compose.yml"
    result = subprocess.run([binary, "config", "-q"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_built_service_has_its_dockerfile_and_a_non_root_user() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    built = {name: spec["build"] for name, spec in compose["services"].items() if "build" in spec}
    assert {"aggregator", "api", "simulator"} <= set(built)
    for name, build in built.items():
        dockerfile = REPO / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        assert "\nUSER " in dockerfile.read_text(), f"{name} runs as root"


def test_simulator_is_started_by_default_and_collectors_only_by_profile() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("mosquitto", "timescaledb", "aggregator", "api", "simulator"):
        assert "profiles" not in services[name], f"{name} should start with a plain `docker compose up`"
    for name, spec in services.items():
        if name.startswith("collector-"):
            assert spec.get("profiles"), f"{name} needs hardware: it must be behind a profile"


def test_the_shipped_broker_refuses_anonymous_clients_and_applies_the_acl() -> None:
    config = (REPO / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in config
    assert any(line.startswith("acl_file ") for line in config)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, spec in compose["services"].items():
        env = spec.get("environment", {})
        if "CW_MQTT_URL" in env:
            assert env.get("CW_MQTT_USERNAME") and env.get("CW_MQTT_PASSWORD_FILE"), f"{name} has no broker account"


def test_no_password_is_written_in_the_compose_file() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "POSTGRES_PASSWORD" not in services["timescaledb"]["environment"]
    assert services["timescaledb"]["environment"]["POSTGRES_PASSWORD_FILE"].endswith("database.secret")
    for name in ("aggregator", "api"):
        env = services[name]["environment"]
        assert "@" in env["CW_DATABASE_URL"] and ":" not in env["CW_DATABASE_URL"].split("//")[1].split("@")[0]
        assert env["PGPASSFILE"].endswith("/pgpass")
