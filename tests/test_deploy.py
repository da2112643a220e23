"""The Pi's way in must stay valid: the compose file, the Dockerfiles it names, the broker config."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tools.localstack import PI_MEMORY_SETTINGS

REPO = Path(__file__).resolve().parent.parent


def test_docker_compose_file_is_valid() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is needed to validate docker-compose.yml"
    result = subprocess.run([binary, "config", "-q"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_built_service_comes_from_the_one_dockerfile_and_runs_as_non_root() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    built = {name: spec["build"] for name, spec in compose["services"].items() if "build" in spec}
    assert {"aggregator", "api", "simulator", "mosquitto"} <= set(built)
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", dockerfile, flags=re.M | re.S))
    for name, build in built.items():
        assert build["context"] == "." and "dockerfile" not in build, f"{name} must build from ./Dockerfile"
        stage = stages[build["target"]]
        # A target's user is the last USER line of its stage or of the stage it starts from.
        chain = stage if "\nUSER " in "\n" + stage else stages["service"]
        users = re.findall(r"^USER (\S+)", chain, flags=re.M)
        assert users and users[-1] not in ("root", "0"), f"{name} runs as root"
        for argument in build.get("args", {}):
            assert f"ARG {argument}" in dockerfile, f"{name} passes {argument}, which the Dockerfile ignores"


def test_every_python_image_has_a_pinned_requirements_file() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, spec in compose["services"].items():
        args = spec.get("build", {}).get("args", {})
        if "REQUIREMENTS" in args:
            pins = (REPO / "docker" / "requirements" / f"{args['REQUIREMENTS']}.txt").read_text().split("\n")
            packages = [line for line in pins if line and not line.startswith("#")]
            assert packages and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^ ;]+", p) for p in packages), name


def test_collector_images_hold_no_pydantic() -> None:
    # A collector's contract and settings do without pydantic (its RAM budget is 30 MB), so its image
    # does not carry it either: only the aggregator's and the api's pins may.
    for image in ("simulator", "nrf24", "ina219", "acs712", "awox"):
        pins = (REPO / "docker" / "requirements" / f"{image}.txt").read_text().lower()
        assert "pydantic" not in pins, image
    for image in ("aggregator", "api"):
        assert "\npydantic==" in (REPO / "docker" / "requirements" / f"{image}.txt").read_text().lower(), image


def test_every_pulled_image_has_a_pinned_tag() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    pulled = [spec["image"] for spec in compose["services"].values() if "build" not in spec]
    froms = re.findall(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), flags=re.M)
    for image in [*pulled, *froms]:
        if ":" not in image:
            continue  # a stage of the Dockerfile
        tag = image.rsplit(":", 1)[1]
        assert tag and "latest" not in tag, f"{image} is not pinned"


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


def test_each_hardware_collector_gets_exactly_its_devices() -> None:
    """What each library opens (README's table): nothing more, so a collector cannot reach another's bus."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    devices = {name: sorted(spec.get("devices", [])) for name, spec in services.items()}
    assert devices["collector-nrf24"] == ["/dev/gpiochip0", "/dev/spidev0.0"]
    assert devices["collector-ina219"] == ["/dev/i2c-1"]
    assert devices["collector-acs712"] == ["${CW_ACS712_DEVICE:-/dev/ttyACM0}:/dev/ttyACM0"]
    assert devices["collector-awox"] == []
    assert "/run/dbus:/run/dbus:ro" in services["collector-awox"]["volumes"]
    for name in ("mosquitto", "timescaledb", "aggregator", "api", "simulator"):
        assert devices[name] == [] and "group_add" not in services[name], f"{name} needs no device"
    groups = {name: services[name].get("group_add") for name in devices if name.startswith("collector-")}
    assert groups == {
        "collector-nrf24": ["${CW_SPI_GID:-999}", "${CW_GPIO_GID:-997}"],
        "collector-ina219": ["${CW_I2C_GID:-998}"],
        "collector-acs712": ["${CW_DIALOUT_GID:-20}"],
        "collector-awox": ["${CW_BLUETOOTH_GID:-112}"],
    }


def test_the_database_gets_the_same_memory_settings_with_and_without_docker() -> None:
    """make run's PostgreSQL and the Pi's TimescaleDB are sized alike for a 1 GB Pi, and the image's
    own tuning from the host's RAM is off (its -c flags would win anyway, but a tuned first start
    leaves a misleading postgresql.conf)."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["timescaledb"]
    command = service["command"]
    assert command[0] == "postgres"
    flags = dict(
        flag.split("=", 1) for option, flag in zip(command[1::2], command[2::2], strict=True) if option == "-c"
    )
    assert {name: flags.get(name) for name, _ in PI_MEMORY_SETTINGS} == dict(PI_MEMORY_SETTINGS)
    assert service["environment"]["NO_TS_TUNE"]
    # The CI stand-in for the image must hand the command's flags to the server as the image does.
    entrypoint = (REPO / "tests" / "compose" / "entrypoint.sh").read_text()
    assert re.search(r'^exec .*postgres -D "\$PGDATA" "\$@"$', entrypoint, flags=re.M)
