"""Settings from ``CW_*`` environment variables without pydantic, for the collectors.

pydantic and its models are about 10 MB of RSS, a third of a collector's 30 MB budget (issue 11),
for a dozen variables read once at start. The aggregator and the api keep pydantic's settings
(settings.py); both read the same variables the same way (``environment_values``), and
tests/test_settings_env.py checks that the MQTT group declared here and there agrees.

A group is a class whose annotated attributes are ``setting(...)``: the annotation says how the text
of the variable is parsed (``str``, ``int``, ``float``, ``bool``, or one of them ``| None``), the
setting gives its default, description and bounds. Values come from keyword arguments, else from
``CW_<NAME>`` variables (the name in any case), else from the default; defaults are checked too.
Every problem is reported at once, each naming its variable (``SettingsError``).
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

ENV_PREFIX = "CW_"
_REQUIRED: Any = object()
# As pydantic parsed booleans from text, so a variable keeps meaning what it meant.
_TRUE = frozenset(("1", "true", "t", "yes", "y", "on"))
_FALSE = frozenset(("0", "false", "f", "no", "n", "off"))


def environment_values(names: Iterable[str]) -> dict[str, str]:
    """``CW_<NAME>`` variables (the name in any case, as pydantic-settings read them) for these fields."""
    found = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in os.environ.items()
        if key[: len(ENV_PREFIX)].upper() == ENV_PREFIX
    }
    return {name: found[name] for name in names if name in found}


class SettingsError(ValueError):
    """Invalid settings; the message names each variable and what is wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Setting:
    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], None] | None = None  # raises ValueError with what is wrong
    secret: bool = False  # never shown in messages or repr

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def setting(
    *,
    default: Any = _REQUIRED,
    description: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    pattern: str | None = None,
    choices: tuple[Any, ...] | None = None,
    check: Callable[[Any], None] | None = None,
    secret: bool = False,
) -> Any:
    """One setting's declaration (typed ``Any`` so that ``port: int = setting(default=...)`` type-checks)."""
    return Setting(default, description, ge, gt, le, pattern, choices, check, secret)


def _parse_text(text: str, kind: type) -> Any:
    stripped = text.strip()
    if kind is bool:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if kind is int:
        try:
            return int(stripped)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if kind is float:
        try:
            return float(stripped)
        except ValueError:
            raise ValueError("expected a number") from None
    return text


def _convert(value: Any, kind: type, optional: bool) -> Any:
    """The value as ``kind``: text is parsed, a value of another type refused (a bool is no number)."""
    if value is None:
        if optional:
            return None
        raise ValueError("a value is required")
    if isinstance(value, str) and kind is not str:
        value = _parse_text(value, kind)
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    if kind is float and not math.isfinite(typing.cast(float, value)):
        raise ValueError("expected a finite number")
    return value


def _check(value: Any, spec: Setting) -> None:
    if value is None:
        return
    if spec.choices is not None and value not in spec.choices:
        options = [str(choice) for choice in spec.choices]
        raise ValueError(f"must be {', '.join(options[:-1])} or {options[-1]}")
    if spec.ge is not None and not value >= spec.ge:
        raise ValueError(f"must be at least {spec.ge:g}")
    if spec.gt is not None and not value > spec.gt:
        raise ValueError(f"must be more than {spec.gt:g}")
    if spec.le is not None and not value <= spec.le:
        raise ValueError(f"must be at most {spec.le:g}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        raise ValueError(f"must match {spec.pattern}")
    if spec.check is not None:
        spec.check(value)


def _kind_of(annotation: Any) -> tuple[type, bool]:
    """(``int``, True) for ``int | None``; (``str``, False) for ``str``."""
    if isinstance(annotation, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            return members[0], True
    if annotation in (str, int, float, bool):
        return annotation, False
    raise TypeError(f"unsupported setting type {annotation!r}")


# Type checkers then know a group as the frozen, keyword-only dataclass it behaves as.
@typing.dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(setting,))
class EnvSettings:
    """Base of a group of settings; immutable once built."""

    log_level: str = setting(default="INFO", description="Python logging level")

    _specs_cache: ClassVar[dict[type, dict[str, tuple[type, bool, Setting]]]] = {}

    @classmethod
    def specs(cls) -> dict[str, tuple[type, bool, Setting]]:
        """Each setting's name, its parsed type, whether it may be None, and its declaration."""
        cached = EnvSettings._specs_cache.get(cls)
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = {}
            for klass in reversed(cls.__mro__):
                for name in vars(klass).get("__annotations__", {}):
                    spec = getattr(cls, name, None)
                    if isinstance(spec, Setting):
                        cached[name] = (*_kind_of(hints[name]), spec)
            EnvSettings._specs_cache[cls] = cached
        return cached

    def __init__(self, **values: Any) -> None:
        specs = self.specs()
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting {', '.join(unknown)}")
        environment = environment_values(specs)
        problems = []
        for name, (kind, optional, spec) in specs.items():
            variable = f"{ENV_PREFIX}{name.upper()}"
            if name in values:
                raw = values[name]
            elif name in environment:
                raw = environment[name]
            elif spec.required:
                problems.append(f"{variable} is required: {spec.description}")
                continue
            else:
                raw = spec.default
            try:
                value = _convert(raw, kind, optional)
                _check(value, spec)
            except ValueError as exc:
                shown = "" if spec.secret else f"={raw!r}"
                problems.append(f"{variable}{shown}: {exc}")
                continue
            object.__setattr__(self, name, value)
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_environment(cls) -> Self:
        return cls()

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.specs()}

    def replace(self, **changes: Any) -> Self:
        """A copy with some values changed, checked as at construction."""
        return type(self)(**{**self.values(), **changes})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSettings) and type(other) is type(self) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash(tuple(self.values().items()))

    def __repr__(self) -> str:
        specs = self.specs()
        shown = [f"{n}={'**********' if specs[n][2].secret else repr(v)}" for n, v in self.values().items()]
        return f"{type(self).__name__}({', '.join(shown)})"


def check_mqtt_url(url: str) -> None:
    """Shared with settings.MqttSettings: the same words whichever service reads it."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("CW_MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883")


class BrokerAddress:
    """What both kinds of broker settings derive from their fields (this class's and
    settings.MqttSettings): the password, and the host, port and TLS of ``mqtt_url``."""

    if typing.TYPE_CHECKING:  # fields of the class this is mixed into (not fields here: pydantic)
        mqtt_url: str
        mqtt_password_file: str | None

    def _mqtt_password_text(self) -> str | None:
        raise NotImplementedError

    def mqtt_secret(self) -> str | None:
        """The broker password, from CW_MQTT_PASSWORD or else from CW_MQTT_PASSWORD_FILE."""
        password = self._mqtt_password_text()
        if password is not None:
            return password
        if self.mqtt_password_file:
            with open(self.mqtt_password_file, encoding="utf-8") as handle:
                return handle.read().strip()
        return None

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "localhost"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"


class MqttEnvSettings(BrokerAddress, EnvSettings):
    """The broker settings (settings.MqttSettings' variables, for services without pydantic)."""

    mqtt_url: str = setting(
        default="mqtt://localhost:1883", description="mqtt://host:port or mqtts://host:port", check=check_mqtt_url
    )
    mqtt_username: str | None = setting(default=None, description="broker account (none: anonymous)")
    mqtt_password: str | None = setting(default=None, description="broker password", secret=True)
    mqtt_password_file: str | None = setting(
        default=None, description="file holding the broker password (generated secrets, docker secrets)"
    )
    base_topic: str = setting(default="citizenwatt", description="first level(s) of every topic")

    def _mqtt_password_text(self) -> str | None:
        return self.mqtt_password
