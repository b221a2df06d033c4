"""How a setting's value is read and checked: the kinds of :mod:`lambdakit.emulator.options`.

A :class:`Kind` turns what a source gave (a flag's text, a variable, a TOML value) into the
value a configuration holds, or raises :class:`ConfigError` starting with the :class:`Source`'s
name for the setting: ``--timeout``, ``AWS_LAMBDA_FUNCTION_TIMEOUT`` or
``lambdakit.toml [functions.NAME] timeout``.  It also says which values it takes
(:meth:`Kind.describe`), for ``--help`` and the docs.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from lambdakit.amqp.uri import BrokerAddress, BrokerUrlError, parse_broker_url

T = TypeVar("T")

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ENV_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """Invalid configuration; the message starts with the flag, key or variable at fault."""


@dataclass(frozen=True)
class Source:
    """Where a value was read: its name there, and what relative paths and URLs are read against.

    ``name`` starts every error about the value: ``--timeout``, ``AWS_LAMBDA_FUNCTION_TIMEOUT``,
    ``lambdakit.toml [functions.orders] timeout``.
    """

    name: str
    base: Path
    environ: Mapping[str, str]


@dataclass(frozen=True)
class Given:
    """A value as a source gave it (a flag's text, a TOML value), not yet checked."""

    value: object
    source: Source


# --- kinds: how a value is read and checked ----------------------------------------------------
class Kind(Generic[T]):
    """How a setting's value is read and checked; every error starts with ``source.name``."""

    def parse(self, value: object, source: Source) -> T:
        raise NotImplementedError

    def describe(self) -> str:
        """The values allowed, for ``--help`` and the docs (``0.1 to 900``); "" for any."""
        return ""

    def arguments(self) -> dict[str, Any]:
        """Extra ``add_argument`` keywords for the setting's flag."""
        return {}


@dataclass(frozen=True)
class Number(Kind[float]):
    low: float
    high: float

    def parse(self, value: object, source: Source) -> float:
        try:
            number = float(str(_scalar(value, source, "a number")))
        except ValueError:
            raise ConfigError(f"{source.name}: expected a number, got {value!r}") from None
        if not self.low <= number <= self.high:
            shown = f"{number:g}" if float(f"{number:g}") == number else repr(number)
            raise ConfigError(f"{source.name}: {shown} is out of range ({self.describe()})")
        return number

    def describe(self) -> str:
        return f"{self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class Integer(Kind[int]):
    low: int
    high: int

    def parse(self, value: object, source: Source) -> int:
        try:
            number = int(str(_scalar(value, source, "a whole number")), 10)
        except ValueError:
            raise ConfigError(f"{source.name}: expected a whole number, got {value!r}") from None
        if not self.low <= number <= self.high:
            raise ConfigError(f"{source.name}: {number} is out of range ({self.describe()})")
        return number

    def describe(self) -> str:
        return f"{self.low} to {self.high}"


@dataclass(frozen=True)
class Choice(Kind[str]):
    """One of ``values``; "" too when ``optional`` (not given).  In a file, ``any_case`` takes
    ``JSON`` for ``json``; a flag's value is checked by argparse, as given."""

    values: tuple[str, ...]
    optional: bool = False
    any_case: bool = False

    def parse(self, value: object, source: Source) -> str:
        text = str(_scalar(value, source, "text"))
        text = text.lower() if self.any_case else text
        if text in self.values or (self.optional and text == ""):
            return text
        raise ConfigError(f"{source.name}: {value!r} is not one of {self.describe()}")

    def describe(self) -> str:
        return ", ".join(self.values)

    def arguments(self) -> dict[str, Any]:
        return {"choices": self.values}


@dataclass(frozen=True)
class Text(Kind[str]):
    def parse(self, value: object, source: Source) -> str:
        return str(_scalar(value, source, "text"))


@dataclass(frozen=True)
class Pattern(Kind[str]):
    """Text that matches ``pattern`` entirely, ``described`` for people."""

    pattern: str
    described: str

    def parse(self, value: object, source: Source) -> str:
        text = str(_scalar(value, source, "text"))
        if not re.fullmatch(self.pattern, text):
            raise ConfigError(f"{source.name}: {text!r} is not {self.described}")
        return text

    def describe(self) -> str:
        return self.described


@dataclass(frozen=True)
class FunctionName(Kind[str]):
    def parse(self, value: object, source: Source) -> str:
        return function_name(source.name, value)

    def describe(self) -> str:
        return "1-64 letters, digits, - or _"


@dataclass(frozen=True)
class Switch(Kind[bool]):
    """true or false in a file; the flag sets the opposite of the default (``--no-freeze``)."""

    default: bool

    def parse(self, value: object, source: Source) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source.name}: expected true or false, got {value!r}")
        return value

    def describe(self) -> str:
        return "true, false"

    def arguments(self) -> dict[str, Any]:
        return {"action": "store_const", "const": not self.default}


@dataclass(frozen=True)
class Directory(Kind[Path | None]):
    """An existing directory, relative to the source's base; "" is none when ``optional``."""

    optional: bool = False

    def parse(self, value: object, source: Source) -> Path | None:
        if self.optional and value == "":
            return None
        return directory(source.name, str(_scalar(value, source, "a directory")), source.base)


@dataclass(frozen=True)
class Directories(Kind[tuple[Path, ...]]):
    """Existing directories, in order, relative to the source's base: a list in a file, one
    per flag (``--layer``, repeatable)."""

    def parse(self, value: object, source: Source) -> tuple[Path, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{source.name}: expected a list of directories, got {value!r}")
        return tuple(
            directory(source.name, str(_scalar(item, source, "a directory")), source.base)
            for item in items
        )

    def describe(self) -> str:
        return "directories, in order"

    def arguments(self) -> dict[str, Any]:
        return {"action": "append"}


@dataclass(frozen=True)
class Location(Kind[Path]):
    """A path that need not exist yet, relative to the source's base."""

    def parse(self, value: object, source: Source) -> Path:
        return (source.base / str(_scalar(value, source, "a path"))).resolve()


@dataclass(frozen=True)
class Destination(Kind[str]):
    """``function:NAME`` or a ``.jsonl`` file (made absolute); the function is checked later."""

    def parse(self, value: object, source: Source) -> str:
        if value == "":
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{source.name}: expected {self.describe()}, got {value!r}")
        if value.startswith("function:"):
            function_name(source.name, value.split(":", 1)[1])
            return value
        if not value.endswith(".jsonl"):
            raise ConfigError(
                f"{source.name}: {value!r} is neither function:NAME nor a .jsonl file"
            )
        path = source.base / value
        if not path.parent.is_dir():
            raise ConfigError(f"{source.name}: the directory of {str(path)!r} does not exist")
        return str(path.resolve())

    def describe(self) -> str:
        return "function:NAME or a .jsonl file"


@dataclass(frozen=True)
class Variables(Kind[dict[str, str]]):
    """Environment variables: ``KEY=VALUE`` texts (``--env``, repeatable) or a TOML table."""

    def parse(self, value: object, source: Source) -> dict[str, str]:
        if isinstance(value, Mapping):
            return {env_key(source.name, str(k)): str(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return dict(parse_env_pair(source.name, str(pair)) for pair in value)
        raise ConfigError(f"{source.name}: expected a table of NAME = value, got {value!r}")

    def arguments(self) -> dict[str, Any]:
        return {"action": "append"}


@dataclass(frozen=True)
class VariablesFile(Kind[dict[str, str]]):
    """A dotenv-style file, relative to the source's base: read at once, its variables kept."""

    def parse(self, value: object, source: Source) -> dict[str, str]:
        if value == "":
            return {}
        return read_env_file(source.name, source.base / str(_scalar(value, source, "a path")))


@dataclass(frozen=True)
class ParameterValues(Kind[dict[str, str]]):
    """CloudFormation parameter values: ``KEY=VALUE`` texts (several per flag, separated by
    spaces, as ``sam --parameter-overrides`` takes them; ``ParameterKey=K,ParameterValue=V``
    too), or a table."""

    def parse(self, value: object, source: Source) -> dict[str, str]:
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, (list, tuple)):
            raise ConfigError(f"{source.name}: expected KEY=VALUE pairs, got {value!r}")
        values: dict[str, str] = {}
        for text in texts:
            try:
                pairs = shlex.split(str(text))
            except ValueError as exc:
                raise ConfigError(f"{source.name}: {exc} in {text!r}") from None
            for pair in pairs:
                key, parameter = _parameter_pair(source.name, pair)
                values[key] = parameter
        return values

    def arguments(self) -> dict[str, Any]:
        return {"action": "append"}


_LONG_PARAMETER = re.compile(r"^ParameterKey=([^,]+),ParameterValue=(.*)$")
_PARAMETER_KEY = re.compile(r"^[a-zA-Z0-9]+$")


def _parameter_pair(name: str, pair: str) -> tuple[str, str]:
    long = _LONG_PARAMETER.fullmatch(pair)
    key, sep, value = (long.group(1), "=", long.group(2)) if long else pair.partition("=")
    if not sep:
        raise ConfigError(f"{name}: expected KEY=VALUE, got {pair!r}")
    if not _PARAMETER_KEY.fullmatch(key):
        raise ConfigError(f"{name}: {key!r} is not a template parameter name (letters, digits)")
    return key, value


@dataclass(frozen=True)
class EnvVarsFile(Kind[dict[str, dict[str, str]]]):
    """A JSON file of environment variables in SAM's ``--env-vars`` format, read at once:
    ``{"Parameters": {NAME: value}, "FunctionName": {NAME: value}}`` (each section a table of
    variables; text, numbers and booleans as Lambda would show them)."""

    def parse(self, value: object, source: Source) -> dict[str, dict[str, str]]:
        if value == "":
            return {}
        path = source.base / str(_scalar(value, source, "a path"))
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{source.name}: cannot read {str(path)!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"{source.name}: {path} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ConfigError(
                f"{source.name}: {path} must hold an object of sections "
                '({"Parameters": {...}, "FunctionName": {...}})'
            )
        sections: dict[str, dict[str, str]] = {}
        for section, variables in document.items():
            where = f"{source.name} ({path} {section})"
            if not isinstance(variables, dict):
                raise ConfigError(f"{where}: expected an object of NAME: value, got {variables!r}")
            sections[section] = {
                env_key(where, str(key)): _variable_text(where, key, variable)
                for key, variable in variables.items()
            }
        return sections

    def describe(self) -> str:
        return "a JSON file"


def _variable_text(where: str, key: object, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{where}: {key}: expected text, a number or a boolean, got {value!r}")


@dataclass(frozen=True)
class CommandLine(Kind[tuple[str, ...]]):
    """A command: a string (the program alone) or a list of strings."""

    def parse(self, value: object, source: Source) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
            return tuple(value)
        raise ConfigError(f"{source.name}: expected a command: a string or a list of strings")


@dataclass(frozen=True)
class Broker(Kind[BrokerAddress]):
    """An ``amqp://`` or ``amqps://`` URL; errors never repeat it (it may hold a password)."""

    def parse(self, value: object, source: Source) -> BrokerAddress:
        try:
            return parse_broker_url(source.name, str(value), source.environ)
        except BrokerUrlError as exc:
            raise ConfigError(str(exc)) from None

    def describe(self) -> str:
        return "amqp:// or amqps:// URL"


def _scalar(value: object, source: Source, expected: str) -> object:
    """``value`` if it is text or a number; a table, list or boolean is an error."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{source.name}: expected {expected}, got {value!r}")


# --- value checks shared with the rest of the configuration ----------------------------------
def function_name(key: str, value: object) -> str:
    if not isinstance(value, str) or not _FUNCTION_NAME.fullmatch(value):
        raise ConfigError(
            f"{key}: {value!r} is not a valid function name (1-64 letters, digits, - or _)"
        )
    return value


def directory(key: str, value: str, base: Path) -> Path:
    path = base / value
    if not path.is_dir():
        raise ConfigError(f"{key}: {str(path)!r} is not a directory")
    return path.resolve()


def env_key(key: str, name: str) -> str:
    if not _ENV_KEY.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a valid environment variable name")
    return name


def parse_env_pair(key: str, pair: str) -> tuple[str, str]:
    """``KEY=VALUE`` as given to ``--env``."""
    name, sep, value = pair.partition("=")
    if not sep:
        raise ConfigError(f"{key}: expected KEY=VALUE, got {pair!r}")
    return env_key(key, name), value


def read_env_file(key: str, path: Path) -> dict[str, str]:
    """A dotenv-style file: ``KEY=VALUE`` lines, ``#`` comments, optional ``export`` and quotes."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {str(path)!r}: {exc.strerror}") from None
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, value = parse_env_pair(f"{key} ({path}:{number})", line)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[name] = value
    return env
