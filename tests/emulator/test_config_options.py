"""The one table of ``serve``'s settings: every option round-trips from each of its sources,
every range bound is refused naming the source, and the dataclasses, ``--help`` and README.md
agree with the table.

The tests build the configuration in-process (``build_config``), in a temporary working
directory whose ``bootstrap`` is the function's runtime.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambdakit.emulator.config import ConfigError, FunctionConfig, ServiceConfig
from lambdakit.emulator.option_kinds import Integer, Number
from lambdakit.emulator.options import BY_NAME, OPTIONS, Option, markdown_table
from lambdakit.emulator.serve_command import _serve_parser, build_config

REPO = Path(__file__).resolve().parent.parent.parent
FILE = "lambdakit.toml"
#: The function of every test: named so both by default (flags) and by its table (file).
NAME = "function"

Loaded = tuple[ServiceConfig, str]


@dataclass(frozen=True)
class Sample:
    """A value for one setting, as flag arguments (the variable's value is the first) and as
    TOML, and what the configuration holds for it."""

    args: tuple[str, ...]
    toml: str
    expected: object
    #: What to compare: the setting's field of the function or the service unless given.
    get: Callable[[Loaded], object] | None = None
    #: More lines for the function's table.
    extra_toml: str = ""
    #: More flags beside the setting's.
    extra_args: tuple[str, ...] = ()


def _function(loaded: Loaded) -> FunctionConfig:
    (function,) = loaded[0].functions.values()
    return function


def _samples(work: Path) -> dict[str, Sample]:
    """One sample per setting of the table: a setting without one fails the tests."""
    python = json.dumps(sys.executable)
    return {
        "name": Sample(("orders",), "", "orders"),
        "handler": Sample(("app.handler",), '"app.handler"', "app.handler"),
        "runtime": Sample(
            ("python", "--handler", "app.handler"),
            '"python"',
            ("-m", "lambdakit.runtime", "app.handler"),
            get=lambda loaded: _function(loaded).command[-3:],
            extra_toml='handler = "app.handler"',
        ),
        "bootstrap": Sample(
            (str(work / "other" / "bootstrap"),),
            json.dumps(str(work / "other" / "bootstrap")),
            (str(work / "other" / "bootstrap"),),
            get=lambda loaded: _function(loaded).command,
        ),
        "command": Sample(
            (),
            f'[{python}, "-c", "pass"]',
            (sys.executable, "-c", "pass"),
        ),
        "code_dir": Sample(("other",), '"other"', work / "other"),
        "timeout": Sample(("7.5",), "7.5", 7.5),
        "memory": Sample(("512",), "512", 512),
        "concurrency": Sample(("3",), "3", 3),
        "max_concurrency": Sample(("16",), "16", 16),
        "observe": Sample((), "false", False),
        "urls": Sample((), "false", False),
        "watch": Sample((), "true", True),
        "debug": Sample((), "true", True),
        "isolation": Sample((), "false", False),
        "cgroups": Sample((), "false", False),
        "max_queue": Sample(("5",), "5", 5),
        "idle_timeout": Sample(("30",), "30", 30.0),
        "init_timeout": Sample(("4",), "4", 4.0),
        "env": Sample(("A=1",), '{ A = "1" }', {"A": "1"}),
        "env_file": Sample(
            ("vars.env",), '"vars.env"', {"B": "2"}, get=lambda loaded: _function(loaded).env
        ),
        "extensions_dir": Sample(("ext",), '"ext"', work / "ext"),
        "layers": Sample(("ext",), '["ext"]', (work / "ext",)),
        "freeze": Sample((), "false", False),
        "url_port": Sample(("9001",), "9001", 9001),
        "max_retry_attempts": Sample(("1",), "1", 1),
        "retry_backoff": Sample(("5",), "5", 5.0),
        "max_event_age": Sample(("60",), "60", 60.0),
        "on_success": Sample((f"function:{NAME}",), f'"function:{NAME}"', f"function:{NAME}"),
        "on_failure": Sample(("out.jsonl",), '"out.jsonl"', str(work / "out.jsonl")),
        "config": Sample(("other.toml",), "", ["from-file"], get=lambda s: sorted(s[0].functions)),
        "template": Sample(
            ("template.yaml",), "", ["FromTemplate"], get=lambda s: sorted(s[0].functions)
        ),
        "parameter_overrides": Sample(
            ("Code=other",),
            "",
            work / "other",
            get=lambda loaded: _function(loaded).code_dir,
            extra_args=("--template", "template.yaml"),
        ),
        "env_vars": Sample(
            ("env.json",),
            '"env.json"',
            {"A": "from-env-vars"},
            get=lambda loaded: _function(loaded).env,
            extra_toml='env = { A = "declared" }',
            extra_args=("--env", "A=declared"),
        ),
        "host": Sample(("0.0.0.0",), '"0.0.0.0"', "0.0.0.0"),
        "port": Sample(("9000",), "9000", 9000),
        "state_dir": Sample(("state",), '"state"', work / "state"),
        "log_format": Sample(("json",), '"json"', "json"),
        "aws_credentials": Sample(("none",), '"none"', "none"),
        "log_level": Sample(("debug",), "", "debug", get=lambda loaded: loaded[1]),
        "region": Sample(("eu-west-1",), '"eu-west-1"', "eu-west-1"),
        "account_id": Sample(("210987654321",), '"210987654321"', "210987654321"),
        "shutdown_timeout": Sample(("5",), "5", 5.0),
        "amqp": Sample(
            ("amqp://u:p@broker:5673/v",),
            "",
            ("broker", 5673, "v", "u"),
            get=lambda s: (
                (s[0].amqp.host, s[0].amqp.port, s[0].amqp.vhost, s[0].amqp.username)
                if s[0].amqp
                else None
            ),
        ),
        "amqp_queue": Sample(("durable",), '"durable"', "durable"),
        "api": Sample(
            ("3001",),
            '{ port = 3001, routes = [{ path = "/a/{id}", function = "function" }] }',
            3001,
            get=lambda s: s[0].api.port if s[0].api else None,
        ),
    }


def _executable(path: Path) -> None:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is a function's code (its ``bootstrap``), with what the
    samples name: another code directory, an extensions directory, a variables file and a
    second ``lambdakit.toml``."""
    _executable(tmp_path / "bootstrap")
    (tmp_path / "other").mkdir()
    _executable(tmp_path / "other" / "bootstrap")
    (tmp_path / "ext").mkdir()
    (tmp_path / "vars.env").write_text("B=2\n")
    (tmp_path / "other.toml").write_text("[functions.from-file]\ncode_dir = 'other'\n")
    (tmp_path / "env.json").write_text('{"Parameters": {"A": "from-env-vars"}}')
    (tmp_path / "template.yaml").write_text(
        "Parameters:\n  Code: {Type: String, Default: .}\n"
        "Resources:\n  FromTemplate:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {Runtime: provided.al2023, CodeUri: !Ref Code}\n"
    )
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return event\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _value(option: Option, sample: Sample, loaded: Loaded) -> object:
    if sample.get is not None:
        return sample.get(loaded)
    holder = _function(loaded) if option.scope == "function" else loaded[0]
    return getattr(holder, option.name)


def _flags(option: Option, *args: str, environ: Mapping[str, str] | None = None) -> Loaded:
    assert option.flag is not None
    return build_config([option.flag, *args], dict(environ or {}))


def _from_file(option: Option, toml: str, extra: str = "") -> Loaded:
    assert option.toml is not None
    line = f"{option.toml} = {toml}"
    own = [line] if option.own_table else []  # a table of its own: a key of the document
    function = [line] if option.scope == "function" else []
    service = [line] if option.scope == "service" and not option.own_table else []
    Path(FILE).write_text(
        "\n".join([*own, f"[functions.{NAME}]", *function, extra, "[service]", *service, ""])
    )
    return build_config(["--config", FILE], {})


def _where_in_file(option: Option) -> str:
    table = f"functions.{NAME}" if option.scope == "function" else "service"
    return f"{FILE} [{table}] {option.toml}"


# --- the table covers the configuration, and the tests cover the table --------------------------
def test_every_option_has_a_sample(work: Path) -> None:
    assert set(_samples(work)) == set(BY_NAME)


def test_every_field_of_the_configuration_is_an_option_with_its_default() -> None:
    for cls, not_settings in (
        (FunctionConfig, {"version", "warnings"}),
        (ServiceConfig, {"functions"}),
    ):
        for field in dataclasses.fields(cls):
            if field.name in not_settings:
                continue
            assert field.name in BY_NAME, f"{cls.__name__}.{field.name} is not in OPTIONS"
            option = BY_NAME[field.name]
            assert option.scope == ("function" if cls is FunctionConfig else "service")
            if field.default is not dataclasses.MISSING and option.name != "state_dir":
                assert field.default == option.default, field.name
    assert ServiceConfig(functions={}).state_dir == Path(str(BY_NAME["state_dir"].default))


def test_names_flags_variables_and_keys_are_unique_and_spelled_alike() -> None:
    for attribute in ("name", "flag", "env", "toml"):
        spelled = [getattr(o, attribute) for o in OPTIONS if getattr(o, attribute)]
        assert len(spelled) == len(set(spelled)), attribute
    for option in OPTIONS:
        if option.toml:
            assert option.toml == option.name
        if option.flag and option.flag != "--no-freeze":
            assert re.fullmatch(r"--[a-z][a-z0-9-]*", option.flag), option.flag


# --- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [o.name for o in OPTIONS if o.flag], ids=str)
def test_every_option_round_trips_from_its_flag(work: Path, name: str) -> None:
    option, sample = BY_NAME[name], _samples(work)[name]
    loaded = _flags(option, *sample.args, *sample.extra_args)
    assert _value(option, sample, loaded) == sample.expected


@pytest.mark.parametrize("name", [o.name for o in OPTIONS if o.toml], ids=str)
def test_every_option_round_trips_from_lambdakit_toml(work: Path, name: str) -> None:
    option, sample = BY_NAME[name], _samples(work)[name]
    loaded = _from_file(option, sample.toml, sample.extra_toml)
    assert _value(option, sample, loaded) == sample.expected


@pytest.mark.parametrize("name", [o.name for o in OPTIONS if o.env], ids=str)
def test_every_option_round_trips_from_its_variable(work: Path, name: str) -> None:
    option, sample = BY_NAME[name], _samples(work)[name]
    assert option.env is not None
    loaded = build_config([], {option.env: sample.args[0]})
    assert _value(option, sample, loaded) == sample.expected


def test_every_option_not_given_takes_the_tables_default(work: Path) -> None:
    service, level = build_config([], {})
    function = _function((service, level))
    for option in OPTIONS:
        holder = function if option.scope == "function" else service
        if option.name in {"code_dir", "state_dir"}:
            assert getattr(holder, option.name) == (work / str(option.default)).resolve()
        elif hasattr(holder, option.name) and option.name != "command":
            assert getattr(holder, option.name) == option.default, option.name
    assert function.env == {} and function.command == (str(work / "bootstrap"),)
    assert level == BY_NAME["log_level"].default


def test_a_flag_wins_over_its_variable(work: Path) -> None:
    service, _ = build_config(["--timeout", "5"], {"AWS_LAMBDA_FUNCTION_TIMEOUT": "abc"})
    assert _function((service, "")).timeout == 5.0


def test_a_functions_variables_are_not_read_for_a_config_file(work: Path) -> None:
    Path(FILE).write_text(f"[functions.{NAME}]\n")
    service, _ = build_config(["--config", FILE], {"AWS_LAMBDA_FUNCTION_TIMEOUT": "7"})
    assert _function((service, "")).timeout == BY_NAME["timeout"].default


def test_service_flags_win_over_the_file_which_wins_over_variables(work: Path) -> None:
    Path(FILE).write_text(f"[functions.{NAME}]\n[service]\nport = 9000\nhost = '0.0.0.0'\n")
    service, _ = build_config(["--config", FILE, "--port", "9001"], {"AMQP_URI": "amqp://broker/"})
    assert (service.port, service.host) == (9001, "0.0.0.0")
    assert service.amqp is not None and service.amqp.host == "broker"


def test_no_freeze_applies_to_every_function_of_a_config_file(work: Path) -> None:
    Path(FILE).write_text("[functions.a]\n[functions.b]\nfreeze = true\n")
    service, _ = build_config(["--config", FILE, "--no-freeze"], {})
    assert [f.freeze for f in service.functions.values()] == [False, False]


@pytest.mark.parametrize(
    "argv", [["--timeout", "5"], ["--env", "A=1"], ["app.handler"], ["--", "true"]]
)
def test_function_flags_are_refused_with_a_config_file(work: Path, argv: list[str]) -> None:
    Path(FILE).write_text(f"[functions.{NAME}]\n")
    with pytest.raises(ConfigError, match="cannot be combined with --config"):
        build_config(["--config", FILE, *argv], {})


def test_the_handler_argument_and_a_command_choose_the_runtime(work: Path) -> None:
    service, _ = build_config(["app.handler"], {})
    assert _function((service, "")).command[-3:] == ("-m", "lambdakit.runtime", "app.handler")
    assert _function((service, "")).handler == "app.handler"
    service, _ = build_config(["--", sys.executable, "-c", "pass"], {})
    assert _function((service, "")).command == (sys.executable, "-c", "pass")
    with pytest.raises(ConfigError, match=r"^-- COMMAND: give one runtime.*--bootstrap"):
        build_config(["--bootstrap", "bootstrap", "--", sys.executable], {})


# --- ranges: every bound, from every source, named as that source names it ---------------------
def _ranged() -> list[tuple[str, float, float]]:
    """(option, a value just outside a bound, the bound) for every bound of the table."""
    cases: list[tuple[str, float, float]] = []
    for option in OPTIONS:
        kind = option.kind
        if isinstance(kind, (Number, Integer)):
            step = 1 if isinstance(kind, Integer) else 0.01
            cases += [(option.name, round(kind.low - step, 6), kind.low)]
            cases += [(option.name, round(kind.high + step, 6), kind.high)]
    return cases


RANGED = _ranged()
FLAG_RANGED = [case for case in RANGED if BY_NAME[case[0]].flag]
FILE_RANGED = [case for case in RANGED if BY_NAME[case[0]].toml]
ENV_RANGED = [case for case in RANGED if BY_NAME[case[0]].env]


def test_the_table_has_ranges() -> None:
    names = {name for name, _, _ in RANGED}
    assert {"timeout", "memory", "concurrency", "port", "shutdown_timeout"} <= names


def _text(number: float) -> str:
    return repr(number) if isinstance(number, float) else str(number)


@pytest.mark.parametrize(("name", "outside", "bound"), FLAG_RANGED, ids=str)
def test_every_range_bound_is_refused_naming_the_flag(
    work: Path, name: str, outside: float, bound: float
) -> None:
    option = BY_NAME[name]
    with pytest.raises(ConfigError) as refused:
        _flags(option, _text(outside))
    assert str(refused.value).startswith(f"{option.flag}: {_text(outside)} is out of range (")
    assert _value(option, Sample((), "", None), _flags(option, _text(bound))) == bound


@pytest.mark.parametrize(("name", "outside", "bound"), FILE_RANGED, ids=str)
def test_every_range_bound_is_refused_naming_the_file_table_and_key(
    work: Path, name: str, outside: float, bound: float
) -> None:
    option = BY_NAME[name]
    with pytest.raises(ConfigError) as refused:
        _from_file(option, _text(outside))
    assert str(refused.value).startswith(f"{_where_in_file(option)}: {_text(outside)} is out of")
    assert _value(option, Sample((), "", None), _from_file(option, _text(bound))) == bound


@pytest.mark.parametrize(("name", "outside", "bound"), ENV_RANGED, ids=str)
def test_every_range_bound_is_refused_naming_the_variable(
    work: Path, name: str, outside: float, bound: float
) -> None:
    option = BY_NAME[name]
    assert option.env is not None
    with pytest.raises(ConfigError) as refused:
        build_config([], {option.env: _text(outside)})
    assert str(refused.value).startswith(f"{option.env}: {_text(outside)} is out of range (")
    loaded = build_config([], {option.env: _text(bound)})
    assert _value(option, Sample((), "", None), loaded) == bound


# --- other errors name their source --------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("timout = 3", f"{FILE} [functions.{NAME}] timout: unknown key (did you mean 'timeout'"),
        ("colour = 3", f"{FILE} [functions.{NAME}] colour: unknown key (known: bootstrap, "),
        ("port = 3", f"{FILE} [functions.{NAME}] port: unknown key here; it belongs in the [s"),
        ("name = 'x'", f"{FILE} [functions.{NAME}] name: unknown key (the function's name is"),
        (
            "[service]\namqp = 'amqp://h/'",
            f"{FILE} [service] amqp: not read from a file, so that cred",
        ),
        ("[service]\nlog_format = 'xml'", f"{FILE} [service] log_format: 'xml' is not one of"),
        ("[service]\naccount_id = '1'", f"{FILE} [service] account_id: '1' is not a 12-digit"),
        ("timeout = 'soon'", f"{FILE} [functions.{NAME}] timeout: expected a number, got 'soon'"),
        ("memory = true", f"{FILE} [functions.{NAME}] memory: expected a whole number, got T"),
        ("freeze = 'no'", f"{FILE} [functions.{NAME}] freeze: expected true or false, got 'no'"),
        ("env = 3", f"{FILE} [functions.{NAME}] env: expected a table of NAME = value"),
        ("command = [1]", f"{FILE} [functions.{NAME}] command: expected a command"),
        ("on_success = 'function:x'", f"{FILE} [functions.{NAME}] on_success: no function na"),
        ("bootstrap = 'nope'", f"{FILE} [functions.{NAME}] bootstrap: bootstrap '"),
    ],
)
def test_file_errors_name_the_file_table_and_key(work: Path, toml: str, message: str) -> None:
    Path(FILE).write_text(f"[functions.{NAME}]\n{toml}\n")
    with pytest.raises(ConfigError) as refused:
        build_config(["--config", FILE], {})
    assert str(refused.value).startswith(message)


def test_a_directory_without_a_runtime_is_named_as_its_source_names_it(work: Path) -> None:
    (work / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^--code-dir: no runtime given .* HANDLER"):
        build_config(["--code-dir", "empty"], {})
    Path(FILE).write_text(f"[functions.{NAME}]\ncode_dir = 'empty'\n")
    with pytest.raises(ConfigError, match=rf"^{FILE} \[functions.{NAME}\] code_dir: no runtime"):
        build_config(["--config", FILE], {})


# --- --help and the docs -----------------------------------------------------------------------
def test_help_lists_every_flag_with_its_range_variable_and_default() -> None:
    text = " ".join(_serve_parser("lambdakit serve").format_help().split())
    for option in OPTIONS:
        if option.flag is None:
            continue
        assert option.flag in text
        if option.flag_help is None:
            assert option.help in text, option.name
            if not option.kind.arguments().get("choices"):
                assert option.kind.describe() in text, option.name
            if option.env:
                assert f"env {option.env}" in text
        for choice in option.kind.arguments().get("choices", ()):
            assert choice in text


def test_the_readme_lists_every_setting_as_the_table_does() -> None:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- settings: .*?-->\n(.*?)<!-- end of settings -->", readme, re.S)
    assert block, "README.md has no settings block"
    assert block.group(1) == markdown_table(), (
        "README.md's settings table is stale: paste `python -m lambdakit.emulator.options`"
    )
    for option in OPTIONS:
        assert any(
            re.search(rf"(?<![\w-]){re.escape(spelled)}(?![\w-])", block.group(1))
            for spelled in (option.flag, option.toml, option.env, option.argument)
            if spelled
        ), option.name


def test_a_bootstrap_in_the_file_is_relative_to_the_file_and_a_flag_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "fn").mkdir(parents=True)
    bootstrap = project / "fn" / "bootstrap"
    bootstrap.write_text("#!/bin/sh\n")
    bootstrap.chmod(0o755)
    config = project / "lambdakit.toml"
    config.write_text('[functions.f]\nbootstrap = "fn/bootstrap"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    service, _ = build_config(["--config", str(config)], {})
    assert service.functions["f"].command == (str(bootstrap.resolve()),)
    with pytest.raises(ConfigError, match=r"^--bootstrap: bootstrap .*elsewhere/fn/bootstrap"):
        build_config(["--bootstrap", "fn/bootstrap"], {})
    monkeypatch.chdir(project)
    service, _ = build_config(["--bootstrap", "fn/bootstrap"], {})
    assert service.functions["function"].command == (str(bootstrap.resolve()),)
