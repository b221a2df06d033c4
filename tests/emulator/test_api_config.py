"""``lambdakit.toml``'s ``[api]`` table and ``--api-port``: what they build, and errors that name
the key at fault (with the key that may have been meant)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdakit.emulator.api_routes import ALLOW_ALL, ApiConfig, ApiRoute, Cors
from lambdakit.emulator.config import ConfigError
from lambdakit.emulator.serve_command import build_config

FILE = "lambdakit.toml"
FUNCTIONS = "[functions.users]\n[functions.orders]\n"
ROUTE = '[[api.routes]]\npath = "/users/{id}"\nfunction = "users"\n'


@pytest.fixture(autouse=True)
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose ``bootstrap`` is every function's runtime."""
    bootstrap = tmp_path / "bootstrap"
    bootstrap.write_text("#!/bin/sh\nexit 0\n")
    bootstrap.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _api(toml: str, *flags: str) -> ApiConfig | None:
    Path(FILE).write_text(toml)
    return build_config(["--config", FILE, *flags], {})[0].api


def test_the_table_builds_the_routes_and_each_kinds_settings() -> None:
    api = _api(
        FUNCTIONS
        + "[api]\nport = 3100\n"
        + "[api.http]\ncors = { allow_origins = ['https://a.example'], max_age = 60 }\n"
        + "[api.rest]\ncors = true\nbinary_media_types = ['image/*']\n"
        + ROUTE
        + '[[api.routes]]\nkind = "rest"\nmethod = "post"\npath = "/orders"\nfunction = "orders"\n'
    )
    assert api is not None
    assert api.port == 3100
    assert api.http_cors == Cors(allow_origins=("https://a.example",), max_age=60)
    assert api.rest_cors == ALLOW_ALL
    assert api.binary_media_types == ("image/*",)
    assert api.routes == (
        ApiRoute("users", "http", "ANY", "/users/{id}"),
        ApiRoute("orders", "rest", "POST", "/orders"),
    )
    assert [route.payload_format for route in api.routes] == ["2.0", "1.0"]


def test_no_api_table_no_api_and_api_port_overrides_the_tables_port() -> None:
    assert _api(FUNCTIONS) is None
    api = _api(FUNCTIONS + "[api]\nport = 3100\n" + ROUTE, "--api-port", "0")
    assert api is not None and api.port == 0 and len(api.routes) == 1


def test_one_function_without_routes_takes_every_request() -> None:
    api = build_config(["--api-port", "3200"], {})[0].api
    assert api is not None and api.port == 3200
    assert api.routes == (ApiRoute("function", "http", "ANY", "$default"),)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[api]\nprot = 1\n", f"{FILE} [api] prot: unknown key (did you mean 'port'?)"),
        ("[api]\nport = 70000\n", f"{FILE} [api] port: 70000 is out of range (0 to 65535)"),
        ("[api]\nport = 'x'\n", f"{FILE} [api] port: expected a whole number"),
        ("[api.htp]\n", f"{FILE} [api] htp: unknown key (did you mean 'http'?)"),
        (
            "[api.http]\ncors = { allow_origin = ['*'] }\n",
            f"{FILE} [api.http] cors.allow_origin: unknown key (did you mean 'allow_origins'?)",
        ),
        (
            "[api.http]\ncors = { allow_origins = '*', max_age = -1 }\n",
            f"{FILE} [api.http] cors.max_age: -1 is out of range",
        ),
        (
            "[api.http]\nbinary_media_types = []\n",
            f"{FILE} [api.http] binary_media_types: unknown key (known: cors)",
        ),
        (
            "[api.rest]\nbinary_media_types = [1]\n",
            f"{FILE} [api.rest] binary_media_types: expected a list of strings",
        ),
        ("[api]\n", f"{FILE} [api]: no routes: add [[api.routes]]"),
        (
            '[[api.routes]]\nfunction = "users"\nmethd = "GET"\n',
            f"{FILE} [[api.routes]] #1 methd: unknown key (did you mean 'method'?)",
        ),
        ('[[api.routes]]\npath = "/a"\n', f"{FILE} [[api.routes]] #1: names no function"),
        (
            '[[api.routes]]\nfunction = "nobody"\n',
            f"{FILE} [[api.routes]] #1: no function named 'nobody' in this service",
        ),
        (
            '[[api.routes]]\nfunction = "users"\nmethod = "FETCH"\n',
            f"{FILE} [[api.routes]] #1: method 'FETCH' is not one of GET",
        ),
        (
            '[[api.routes]]\nfunction = "users"\nkind = "soap"\n',
            f"{FILE} [[api.routes]] #1 kind: 'soap' is not one of http, rest",
        ),
        (
            '[[api.routes]]\nfunction = "users"\nkind = "rest"\npath = "/a"\nformat = "2.0"\n',
            f"{FILE} [[api.routes]] #1: a REST API sends payload format 1.0 only",
        ),
        (
            '[[api.routes]]\nfunction = "users"\nkind = "rest"\n',
            f"{FILE} [[api.routes]] #1: a REST route needs a path",
        ),
        (
            '[[api.routes]]\nfunction = "users"\npath = "/{proxy+}/more"\n',
            f"{FILE} [[api.routes]] #1: path '/{{proxy+}}/more': a greedy {{proxy+}} must be",
        ),
        (
            '[[api.routes]]\nfunction = "users"\npath = "users"\n',
            f"{FILE} [[api.routes]] #1: path 'users' must start with '/'",
        ),
        (
            ROUTE + '[[api.routes]]\npath = "/users/{name}"\nfunction = "orders"\n',
            f"{FILE} [[api.routes]] #2: ANY /users/{{name}} is already routed "
            f"({FILE} [[api.routes]] #1)",
        ),
        ("[service]\napi = 3000\n", f"{FILE} [service] api: unknown key here; it is a table"),
        ("[apis]\n", f"{FILE}: unknown section 'apis' (expected [service], [functions.NAME] and"),
    ],
)
def test_errors_name_the_key_at_fault(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _api(FUNCTIONS + toml)
    assert str(refused.value).startswith(message), str(refused.value)


def test_api_port_is_checked_as_a_port_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--api-port: 70000 is out of range"):
        build_config(["--api-port", "70000"], {})
    Path(FILE).write_text(FUNCTIONS + "[api]\n" + ROUTE)
    with pytest.raises(ConfigError, match=r"^--api-port: expected a whole number"):
        build_config(["--config", FILE, "--api-port", "soon"], {})
