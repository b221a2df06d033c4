"""How ``serve``'s API Gateway setting is read: ``--api-port PORT`` or ``lambdakit.toml``'s
``[api]`` table, into an :class:`~lambdakit.emulator.api_routes.ApiConfig`.

The table::

    [api]
    port = 3000                         # 0: a free port (printed at start)
    [api.http]                          # the HTTP API (SAM HttpApi)
    cors = { allow_origins = ["*"] }    # or cors = true
    [api.rest]                          # the REST API (SAM Api)
    cors = true
    binary_media_types = ["image/png"]
    [[api.routes]]
    method = "GET"                      # or ANY (the default)
    path = "/users/{id}"                # or $default (HTTP APIs)
    function = "users"
    kind = "http"                       # or "rest"
    format = "2.0"                      # "1.0" or "2.0"; REST: 1.0 only

Every error names the key at fault (``lambdakit.toml [api.http] cors: ...``,
``lambdakit.toml [[api.routes]] #2 method: ...``), and an unknown key is named with the keys it
may have meant.  Whether the routes' functions exist is checked once the functions are known
(:func:`lambdakit.emulator.api_routes.check_api`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lambdakit.emulator.api_routes import (
    ALLOW_ALL,
    DEFAULT_PORT,
    DEFAULT_ROUTE,
    ApiConfig,
    ApiRoute,
    Cors,
)
from lambdakit.emulator.option_kinds import ConfigError, Given, Integer, Kind, Source

_PORT = Integer(0, 65535)
_TABLE_KEYS = ("port", "http", "rest", "routes")
_KIND_KEYS = {"http": ("cors",), "rest": ("cors", "binary_media_types")}
_CORS_KEYS = (
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "max_age",
    "allow_credentials",
)
_ROUTE_KEYS = ("function", "method", "path", "kind", "format")


@dataclass(frozen=True)
class PortOverride:
    """``--api-port`` given with a file's ``[api]`` table: the table, served on the flag's port."""

    table: Given
    port: Given


@dataclass(frozen=True)
class ApiTable(Kind[ApiConfig]):
    """``--api-port PORT`` (a port; the routes come later), or the ``[api]`` table."""

    def parse(self, value: object, source: Source) -> ApiConfig:
        if isinstance(value, ApiConfig):  # read from a SAM template's events
            return value
        if isinstance(value, PortOverride):
            api = self.parse(value.table.value, value.table.source)
            port = _PORT.parse(value.port.value, value.port.source)
            return replace(api, port=port, source=value.port.source.name)
        if isinstance(value, Mapping):
            return _read_table(value, _Names(source.name))
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return ApiConfig(port=_PORT.parse(value, source), source=source.name)
        raise ConfigError(f"{source.name}: expected a port or a table, got {value!r}")

    def describe(self) -> str:
        return "a port (0: a free one), or the [api] table"


@dataclass(frozen=True)
class _Names:
    """How errors name the keys under ``[api]``: ``lambdakit.toml [api.http] cors``."""

    top: str  # "lambdakit.toml [api]"

    def table(self, suffix: str, key: str = "") -> str:
        file, _, table = self.top.rpartition(" [")
        table = table.rstrip("]") + (f".{suffix}" if suffix else "")
        return f"{file} [{table}] {key}".rstrip()

    def route(self, number: int, key: str = "") -> str:
        file, _, table = self.top.rpartition(" [")
        return f"{file} [[{table.rstrip(']')}.routes]] #{number} {key}".rstrip()


def _read_table(table: Mapping[str, Any], names: _Names) -> ApiConfig:
    _known(table, _TABLE_KEYS, names.table(""))
    port = DEFAULT_PORT
    if "port" in table:
        port = _PORT.parse(table["port"], Source(names.table("", "port"), *_nowhere()))
    kinds: dict[str, Mapping[str, Any]] = {}
    for kind in ("http", "rest"):
        section = table.get(kind, {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{names.table('', kind)}: expected a table ([api.{kind}])")
        _known(section, _KIND_KEYS[kind], names.table(kind))
        kinds[kind] = section
    routes = table.get("routes", [])
    if not isinstance(routes, list) or not all(isinstance(r, Mapping) for r in routes):
        raise ConfigError(f"{names.table('', 'routes')}: expected [[api.routes]] tables")
    return ApiConfig(
        routes=tuple(_route(route, names, number) for number, route in enumerate(routes, 1)),
        port=port,
        http_cors=_cors(kinds["http"].get("cors"), names.table("http", "cors")),
        rest_cors=_cors(kinds["rest"].get("cors"), names.table("rest", "cors")),
        binary_media_types=_strings(
            kinds["rest"].get("binary_media_types", []),
            names.table("rest", "binary_media_types"),
        ),
        source=names.table(""),
    )


def _route(table: Mapping[str, Any], names: _Names, number: int) -> ApiRoute:
    where = names.route(number)
    _known(table, _ROUTE_KEYS, where)
    if "function" not in table:
        raise ConfigError(f'{where}: names no function (add function = "NAME")')
    text = {key: _text(table[key], names.route(number, key)) for key in table}
    kind = text.get("kind", "http")
    if kind not in ("http", "rest"):
        raise ConfigError(f"{names.route(number, 'kind')}: {kind!r} is not one of http, rest")
    path = text.get("path", DEFAULT_ROUTE if kind == "http" else "")
    if not path:
        raise ConfigError(f'{where}: a REST route needs a path (path = "/users/{{id}}")')
    return ApiRoute(
        function=text["function"],
        kind="rest" if kind == "rest" else "http",
        method=text.get("method", "ANY").upper(),
        path=path,
        format=text.get("format"),
        source=where,
    )


def _cors(value: object, where: str) -> Cors | None:
    if value is None or value is False:
        return None
    if value is True:
        return ALLOW_ALL
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected true, false or a table of CORS settings")
    _known(value, _CORS_KEYS, where, ".")
    max_age = value.get("max_age")
    if max_age is not None:
        max_age = Integer(0, 86400).parse(max_age, Source(f"{where}.max_age", *_nowhere()))
    credentials = value.get("allow_credentials", False)
    if not isinstance(credentials, bool):
        raise ConfigError(f"{where}.allow_credentials: expected true or false")
    return Cors(
        allow_origins=_strings(value.get("allow_origins", []), f"{where}.allow_origins"),
        allow_methods=tuple(
            m.upper() for m in _strings(value.get("allow_methods", []), f"{where}.allow_methods")
        ),
        allow_headers=_strings(value.get("allow_headers", []), f"{where}.allow_headers"),
        expose_headers=_strings(value.get("expose_headers", []), f"{where}.expose_headers"),
        max_age=max_age,
        allow_credentials=credentials,
    )


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of strings, got {value!r}")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _known(table: Mapping[str, Any], keys: Iterable[str], where: str, sep: str = " ") -> None:
    """Refuse a key not among ``keys``, naming it and the key it may have meant."""
    keys = tuple(keys)
    for key in table:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(keys)}"
            raise ConfigError(f"{where}{sep}{key}: unknown key ({hint})")


def _nowhere() -> tuple[Any, Mapping[str, str]]:
    """A source's base and environment, for values that read neither."""
    from pathlib import Path

    return Path(), {}
