"""``serve --template``: a SAM template read into the service's functions, API routes and
warnings (in-process, from real files), and its errors through the real command line."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lambdakit.emulator.api_routes import Cors
from lambdakit.emulator.config import ConfigError
from lambdakit.emulator.sam_apis import ApiEvent, ApiSettings
from lambdakit.emulator.sam_template import SamTemplate, merge_globals, read_template
from lambdakit.emulator.serve_command import load_config
from tests.serving import REPO

EXAMPLE = REPO / "examples" / "sam"
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
HERE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine()
)


def _read(path: Path, **parameters: str) -> SamTemplate:
    return read_template(
        path, parameters=parameters, region="eu-west-1", account_id="210987654321", environ={}
    )


def _template(tmp_path: Path, text: str, name: str = "template.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    (tmp_path / "src").mkdir(exist_ok=True)
    for code_dir in (tmp_path, tmp_path / "src"):  # serve checks the handler's module exists
        (code_dir / "app.py").write_text("def handler(event, context):\n    return event\n")
    return path


def _one_python_function(properties: str = "", extra: str = "") -> str:
    """A template whose function ``Fn`` has ``properties`` more; ``extra`` sections first."""
    lines = [
        "Resources:",
        "  Fn:",
        "    Type: AWS::Serverless::Function",
        "    Properties:",
        f"      Runtime: {PYTHON}",
        "      Handler: app.handler",
        "      CodeUri: src",
    ]
    lines += ["      " + line for line in textwrap.dedent(properties).splitlines()]
    return textwrap.dedent(extra) + "\n" + "\n".join(lines) + "\n"


def _resource(text: str) -> str:
    """Another resource, appended to a template of :func:`_one_python_function`."""
    return textwrap.indent(textwrap.dedent(text), "  ")


# --- the example project ----------------------------------------------------------------------
def test_the_example_templates_functions_have_the_settings_it_gives() -> None:
    template = _read(EXAMPLE / "template.yaml")
    orders, notify = template.functions["OrdersFunction"], template.functions["NotifyFunction"]
    assert orders.command == (sys.executable, "-m", "lambdakit.runtime", "app.get_order")
    assert orders.handler == "app.get_order"
    assert orders.code_dir == EXAMPLE / "src" / "orders"
    assert (orders.timeout, orders.memory) == (10.0, 256)  # from Globals
    assert (notify.timeout, notify.memory) == (5.0, 256)  # its own Timeout over the Globals'
    assert orders.layers == (EXAMPLE / "layers" / "shared", EXAMPLE / "layers" / "audit")
    assert notify.layers == (EXAMPLE / "layers" / "shared",)
    assert orders.env == {
        "STAGE": "dev",  # Globals, !Ref of a parameter's Default
        "LOG_LEVEL": "INFO",  # Globals
        "TABLE_NAME": "orders-dev",
        "REGION_LABEL": "orders in eu-west-1",  # !Sub with a pseudo parameter
        "NOTIFY_FUNCTION": "NotifyFunction",  # !Ref of a function: its name
        "GREETING": "hello",
        "AUDIT": "relaxed",  # !If of a condition on a parameter
    }
    assert notify.env == {"STAGE": "dev", "LOG_LEVEL": "INFO"}
    assert orders.url_port == 0  # FunctionUrlConfig: a free port
    assert notify.url_port is None
    assert (notify.max_retry_attempts, notify.max_event_age) == (1, 3600.0)
    assert notify.on_failure == "function:OrdersFunction"  # !GetAtt OrdersFunction.Arn
    assert template.details["OrdersFunction"].description == "Reads one order"
    assert template.details["OrdersFunction"].architecture == "x86_64"


def test_the_example_templates_routes_are_read_not_served() -> None:
    template = _read(EXAMPLE / "template.yaml")
    assert template.api_events == (
        ApiEvent(
            function="OrdersFunction",
            api_kind="http",
            method="GET",
            path="/orders/{id}",
            api_id="OrdersApi",
            event="GetOrder",
            payload_format="2.0",
        ),
    )
    assert template.apis == {
        "OrdersApi": ApiSettings(
            api_id="OrdersApi",
            api_kind="http",
            stage_name="dev",
            cors=Cors(allow_origins=("http://localhost:3000",), allow_methods=("GET", "POST")),
        )
    }


def test_the_example_templates_unused_properties_are_each_named_once() -> None:
    warnings = _read(EXAMPLE / "template.yaml").warnings
    expected = [
        "Globals.Function.Tracing: ignored (there is no X-Ray locally)",
        "Resources.OrdersFunction.Properties.Policies: ignored (IAM is not enforced locally)",
        "Resources.NotifyFunction.Properties.Events.Nightly: Type Schedule is not triggered "
        "locally; invoke NotifyFunction with lambdakit invoke",
    ]
    for text in expected:
        assert sum(text in warning for warning in warnings) == 1, (text, warnings)
    assert all(warning.startswith(str(EXAMPLE / "template.yaml")) for warning in warnings)
    assert not any("GetOrder" in warning or "OrdersApi" in warning for warning in warnings)


def test_parameter_overrides_win_over_defaults_and_decide_conditions() -> None:
    template = _read(EXAMPLE / "template.yaml", Stage="prod", TableName="orders-prod")
    orders = template.functions["OrdersFunction"]
    assert (orders.env["STAGE"], orders.env["TABLE_NAME"]) == ("prod", "orders-prod")
    assert orders.env["AUDIT"] == "strict"
    assert template.apis["OrdersApi"].stage_name == "prod"


# --- Globals -------------------------------------------------------------------------------------
def test_globals_merge_as_sam_merges_them() -> None:
    shared = {"Timeout": 3, "Environment": {"Variables": {"A": "1", "B": "1"}}, "Layers": ["g"]}
    own = {"Timeout": 9, "Environment": {"Variables": {"B": "2"}}, "Layers": ["f"]}
    assert merge_globals(shared, own) == {
        "Timeout": 9,  # a value of the function replaces the global one
        "Environment": {"Variables": {"A": "1", "B": "2"}},  # maps merge
        "Layers": ["g", "f"],  # the global items come first
    }
    # An intrinsic is a value, not a map to merge into.
    assert merge_globals({"Ref": "A"}, {"Fn::Sub": "b"}) == {"Fn::Sub": "b"}


def test_global_layers_come_before_the_functions_own(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    path = _template(
        tmp_path,
        f"""\
        Globals:
          Function:
            Layers: [!Ref One]
        Resources:
          One: {{Type: AWS::Serverless::LayerVersion, Properties: {{ContentUri: one}}}}
          Two: {{Type: AWS::Serverless::LayerVersion, Properties: {{ContentUri: two}}}}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              {{Runtime: {PYTHON}, Handler: app.handler, CodeUri: src, Layers: [!Ref Two]}}
        """,
    )
    assert _read(path).functions["Fn"].layers == (tmp_path / "one", tmp_path / "two")


# --- intrinsic functions -------------------------------------------------------------------------
def test_intrinsics_resolve_what_is_local_and_warn_for_the_rest(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function(
            """\
            FunctionName: !Sub "${Prefix}-fn"
            Environment:
              Variables:
                JOINED: !Join ["-", [a, !Ref Prefix, !Ref "AWS::AccountId"]]
                SELECTED: !Select [1, !Split [",", "x,y,z"]]
                MAPPED: !FindInMap [Sizes, !Ref "AWS::Region", small]
                LITERAL: !Sub "${!NotAVariable} in ${AWS::Partition}"
                SUBLIST: !Sub ["${Who}@${AWS::Region}", {Who: !Ref Prefix}]
                FLAG: true
                NUMBER: 42
                TABLE: !GetAtt Table.Arn
                SECRET: !Ref Secret
                GONE: !If [Never, x, !Ref "AWS::NoValue"]
            Policies:
              - Statement: [{Effect: Allow, Action: "*", Resource: !GetAtt Table.StreamArn}]
            """,
            extra="""\
        Parameters:
          Prefix: {Type: String, Default: shop}
          Secret: {Type: String}
        Conditions:
          Never: !Equals [a, b]
        Mappings:
          Sizes:
            eu-west-1: {small: "128"}
        """,
        )
        + _resource("Table: {Type: AWS::DynamoDB::Table}\n"),
    )
    template = _read(path)
    (function,) = template.functions.values()
    assert function.name == "shop-fn"
    assert function.env == {
        "JOINED": "a-shop-210987654321",
        "SELECTED": "y",
        "MAPPED": "128",
        "LITERAL": "${NotAVariable} in aws",
        "SUBLIST": "shop@eu-west-1",
        "FLAG": "true",
        "NUMBER": "42",
        "TABLE": "",  # unknown here: empty, and said so
        "SECRET": "",
    }
    warnings = "\n".join(template.warnings)
    assert "Variables.TABLE: !GetAtt Table.Arn cannot be resolved locally" in warnings
    assert "Variables.SECRET: !Ref Secret cannot be resolved locally (the parameter has no" in (
        warnings
    )
    assert "not emulated locally: Table (AWS::DynamoDB::Table)" in warnings
    # An ignored property's unknowns are not reported: the property itself is.
    assert "Policies: ignored (IAM is not enforced locally)" in warnings
    assert "!GetAtt Table.StreamArn" not in warnings


def test_a_function_whose_condition_is_false_is_not_served(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        f"""\
        Parameters:
          Stage: {{Type: String, Default: dev}}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
        Resources:
          Always:
            Type: AWS::Serverless::Function
            Properties: {{Runtime: {PYTHON}, Handler: app.handler, CodeUri: src}}
          ProdOnly:
            Type: AWS::Serverless::Function
            Condition: IsProd
            Properties: {{Runtime: {PYTHON}, Handler: app.handler, CodeUri: src}}
        """,
    )
    template = _read(path)
    assert list(template.functions) == ["Always"]
    assert any(
        "ProdOnly: not served: its Condition IsProd is false" in w for w in template.warnings
    )
    assert list(_read(path, Stage="prod").functions) == ["Always", "ProdOnly"]


def test_a_json_template_reads_as_the_yaml_one(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        f"""\
        {{"Resources": {{"Fn": {{"Type": "AWS::Serverless::Function", "Properties": {{
          "Runtime": "{PYTHON}", "Handler": "app.handler", "CodeUri": "src",
          "Environment": {{"Variables": {{"WHERE": {{"Fn::Sub": "${{AWS::Region}}"}}}}}}}}}}}}}}
        """,
        name="template.json",
    )
    assert _read(path).functions["Fn"].env == {"WHERE": "eu-west-1"}


# --- runtimes ------------------------------------------------------------------------------------
def test_a_provided_runtime_runs_the_bootstrap_of_code_uri(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        """\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Runtime: provided.al2023, Handler: function.handler, CodeUri: src}
        """,
    )
    (tmp_path / "src" / "bootstrap").write_text("#!/bin/sh\n")
    (tmp_path / "src" / "bootstrap").chmod(0o755)
    function = _read(path).functions["Fn"]
    assert function.command == (str(tmp_path / "src" / "bootstrap"),)
    assert function.handler == "function.handler"


def test_a_runtime_lambdakit_does_not_run_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function()
        + _resource(
            """\
            Web:
              Type: AWS::Serverless::Function
              Properties: {Runtime: nodejs20.x, Handler: index.handler, CodeUri: src}
            """
        ),
    )
    template = _read(path)
    assert list(template.functions) == ["Fn"]
    (warning,) = [w for w in template.warnings if "nodejs20.x" in w]
    assert "Web is not served" in warning and "command = [...]" in warning


def test_a_different_python_version_runs_on_this_python_and_says_so(tmp_path: Path) -> None:
    other = "python3.9" if PYTHON != "python3.9" else "python3.13"
    path = _template(tmp_path, _one_python_function().replace(PYTHON, other))
    template = _read(path)
    assert template.functions["Fn"].command[0] == sys.executable
    assert any(f"{other} runs on this machine's Python" in w for w in template.warnings)


# --- events, APIs, destinations, URLs -------------------------------------------------------------
def test_api_events_and_their_apis_are_read(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function(
            """\
            Events:
              List: {Type: Api, Properties: {Path: /items, Method: get}}
              Any: {Type: Api, Properties: {Path: "/items/{proxy+}", Method: any}}
              Default: {Type: HttpApi}
              Old:
                Type: HttpApi
                Properties: {Path: /old, Method: post, PayloadFormatVersion: "1.0"}
              Queue: {Type: SQS, Properties: {Queue: arn:aws:sqs:us-east-1:1:q}}
            """,
            extra="""\
        Globals:
          Api:
            Cors: "'*'"
            BinaryMediaTypes: ["image~1png"]
            Auth: {DefaultAuthorizer: NONE}
        """,
        ),
    )
    template = _read(path)
    routes = {
        (e.api_kind, e.method, e.path, e.api_id, e.payload_format) for e in template.api_events
    }
    assert routes == {
        ("rest", "GET", "/items", "ServerlessRestApi", "1.0"),
        ("rest", "ANY", "/items/{proxy+}", "ServerlessRestApi", "1.0"),
        ("http", "ANY", "$default", "ServerlessHttpApi", "2.0"),
        ("http", "POST", "/old", "ServerlessHttpApi", "1.0"),
    }
    rest = template.apis["ServerlessRestApi"]
    assert rest.binary_media_types == ("image/png",)
    assert rest.cors is not None and rest.cors.allow_origins == ("*",)
    assert rest.unsupported == ("Auth",)
    assert template.apis["ServerlessHttpApi"].stage_name == "$default"
    (queue,) = [w for w in template.warnings if "Events." in w]
    assert "Events.Queue: Type SQS is not triggered locally" in queue


def test_destinations_map_to_functions_of_the_template_or_are_named(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function(
            """\
            EventInvokeConfig:
              MaximumRetryAttempts: 0
              DestinationConfig:
                OnSuccess: {Type: Lambda, Destination: !Ref Other}
                OnFailure: {Type: SQS, Destination: arn:aws:sqs:us-east-1:1:dead}
            FunctionUrlConfig: {AuthType: AWS_IAM, Cors: {AllowOrigins: ["*"]}}
            """
        )
        + _resource(
            f"""\
            Other:
              Type: AWS::Serverless::Function
              Properties: {{Runtime: {PYTHON}, Handler: app.handler, CodeUri: src}}
            """
        ),
    )
    template = _read(path)
    function = template.functions["Fn"]
    assert (function.on_success, function.on_failure) == ("function:Other", "")
    assert function.max_retry_attempts == 0
    warnings = "\n".join(template.warnings)
    assert "OnFailure: SQS destination arn:aws:sqs:us-east-1:1:dead is not delivered" in warnings
    assert "FunctionUrlConfig.AuthType: AWS_IAM is not checked locally" in warnings
    assert "FunctionUrlConfig.Cors: ignored" in warnings


def test_a_layer_that_is_not_in_the_template_is_named(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:7"
    path = _template(tmp_path, _one_python_function(f"Layers: [{arn}]"))
    template = _read(path)
    assert template.functions["Fn"].layers == ()
    (warning,) = [w for w in template.warnings if "Layers" in w]
    assert f"layer {arn} is not a layer of this template; not used" in warning


def test_reserved_concurrency_and_architectures(tmp_path: Path) -> None:
    other = "arm64" if HERE == "x86_64" else "x86_64"
    path = _template(
        tmp_path,
        _one_python_function(f"ReservedConcurrentExecutions: 3\nArchitectures: [{other}]"),
    )
    template = _read(path)
    assert template.functions["Fn"].concurrency == 3
    assert template.details["Fn"].architecture == other
    assert any(
        f"{other}: the function runs on this machine's {HERE}" in w for w in template.warnings
    )


# --- errors --------------------------------------------------------------------------------------
ERRORS = [
    ("Resources:\n  Fn: {Type: [1}\n", "is not valid YAML (line 2, column 16)"),
    ("Parameters: {}\n", "has no Resources"),
    (
        "Resources:\n  T: {Type: AWS::DynamoDB::Table}\n",
        "declares no AWS::Serverless::Function",
    ),
    (
        _one_python_function().replace("CodeUri: src", "CodeUri: nowhere"),
        "Resources.Fn.Properties.CodeUri: '{tmp}/nowhere' is not a directory",
    ),
    (
        _one_python_function("PackageType: Image\nImageUri: repo/fn:latest").replace(
            "CodeUri: src", ""
        ),
        "Resources.Fn.Properties.PackageType: Fn is an image function",
    ),
    (
        _one_python_function().replace("CodeUri: src", "CodeUri: s3://bucket/code.zip"),
        "CodeUri: s3://bucket/code.zip is not a local directory",
    ),
    (
        _one_python_function().replace("CodeUri: src", "InlineCode: 'def handler(e, c): pass'"),
        "InlineCode: inline code is not served",
    ),
    (
        _one_python_function().replace(f"Runtime: {PYTHON}", ""),
        "Resources.Fn.Properties.Runtime: missing",
    ),
    (
        _one_python_function().replace("Handler: app.handler", ""),
        "Resources.Fn.Properties.Handler: missing (Runtime",
    ),
    (
        _one_python_function("Timeout: 1000"),
        "Resources.Fn.Properties.Timeout: 1000 is out of range (0.1 to 900)",
    ),
    (
        _one_python_function(extra="Globals:\n  Function:\n    Events: {}\n"),
        "Globals.Function.Events: SAM does not allow Events in Globals",
    ),
    (
        _one_python_function("Layers: [!Ref L]")
        + _resource("L: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: nolayer}}"),
        "Resources.L.Properties.ContentUri: '{tmp}/nolayer' is not a directory",
    ),
    (
        """\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Runtime: provided.al2, CodeUri: src}
        """,
        "CodeUri: Runtime provided.al2 runs the 'bootstrap' of CodeUri, and '{tmp}/src' has none",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_bad_templates_are_one_line_errors_through_the_command_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _template(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "lambdakit", "serve", "--template", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lambdakit serve: error: ")
    assert message.format(tmp=tmp_path) in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--template", "/no/such.yaml"], "--template: cannot read '/no/such.yaml': No such file"),
        (
            ["--template", "t.yaml", "--config", "l.toml"],
            "--template: cannot be combined with --config",
        ),
        (
            ["--template", "t.yaml", "--timeout", "3"],
            "--timeout: cannot be combined with --template",
        ),
        (["--parameter-overrides", "A=1", "app.handler"], "--parameter-overrides: only with"),
        (["--template", "t.yaml", "--parameter-overrides", "A"], "expected KEY=VALUE, got 'A'"),
        (["--template", "t.yaml", "--env-vars", "/no/env.json"], "--env-vars: cannot read"),
    ],
)
def test_template_flags_are_checked(tmp_path: Path, argv: list[str], message: str) -> None:
    path = _template(tmp_path, _one_python_function())
    argv = [str(path) if arg == "t.yaml" else arg for arg in argv]
    with pytest.raises(ConfigError) as refused:
        load_config(argv, {})
    assert message in str(refused.value)


def test_parameter_overrides_take_sams_forms(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function(
            "Environment: {Variables: {A: !Ref A, B: !Ref B, C: !Ref C}}",
            extra="Parameters: {A: {Type: String}, B: {Type: String}, C: {Type: String}}",
        ),
    )
    loaded = load_config(
        [
            "--template",
            str(path),
            "--parameter-overrides",
            "A=1 'B=two words'",
            "--parameter-overrides",
            "ParameterKey=C,ParameterValue=3",
            "--parameter-overrides",
            "Unknown=4",
        ],
        {},
    )
    assert loaded.service.functions["Fn"].env == {"A": "1", "B": "two words", "C": "3"}
    assert any("Unknown is not a parameter" in warning for warning in loaded.warnings)


def test_conditions_combine_and_an_undecidable_one_is_named(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _one_python_function(
            """\
            Environment:
              Variables:
                BOTH: !If [Both, y, n]
                EITHER: !If [Either, y, n]
                NEITHER: !If [Neither, y, n]
                UNKNOWN: !If [Unknown, y, n]
            """,
            extra="""\
            Parameters:
              Stage: {Type: String, Default: dev}
              Region: {Type: AWS::SSM::Parameter::Value<String>, Default: /config/region}
            Conditions:
              IsDev: !Equals [!Ref Stage, dev]
              IsProd: !Equals [!Ref Stage, prod]
              Both: !And [!Condition IsDev, !Not [!Condition IsProd]]
              Either: !Or [!Condition IsProd, !Condition IsDev]
              Neither: !Not [!Condition Either]
              Unknown: !Equals [!Ref Region, eu-west-1]
            """,
        ),
    )
    template = _read(path)
    assert template.functions["Fn"].env == {
        "BOTH": "y",
        "EITHER": "y",
        "NEITHER": "n",
        "UNKNOWN": "",
    }
    assert any("!Ref Region cannot be resolved locally" in w for w in template.warnings)
