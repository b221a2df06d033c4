"""ListFunctions, GetFunction and GetFunctionConfiguration through boto3 and the AWS CLI."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import BASH_RUNTIME, Serve, aws_cli, lambda_client, running_serve

_NAMES = ("alpha", "bravo", "charlie", "delta", "echo")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    work = tmp_path_factory.mktemp("functions")
    (work / "app.py").write_text("def handler(event, context):\n    return event\n")
    tables = [
        f'[functions.{name}]\ncode_dir = "{BASH_RUNTIME}"\nhandler = "function.echo_event"\n'
        for name in _NAMES[1:]
    ]
    tables.append(
        '[functions.alpha]\nruntime = "python"\nhandler = "app.handler"\ntimeout = 7.5\n'
        'memory = 512\nenv = { GREETING = "hi" }\n'
    )
    config = work / "lambdakit.toml"
    config.write_text('[service]\nregion = "eu-west-1"\n' + "".join(tables))
    with running_serve("--config", str(config)) as s:
        yield s


def test_get_function_configuration_answers_from_the_configuration(serve: Serve) -> None:
    configuration = lambda_client(serve).get_function_configuration(FunctionName="alpha")
    assert configuration["FunctionName"] == "alpha"
    assert configuration["FunctionArn"] == "arn:aws:lambda:eu-west-1:123456789012:function:alpha"
    assert configuration["Handler"] == "app.handler"
    assert configuration["Runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert configuration["Timeout"] == 8  # whole seconds, rounded up
    assert configuration["MemorySize"] == 512
    assert configuration["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert configuration["Version"] == "$LATEST"
    assert configuration["PackageType"] == "Zip"
    assert configuration["State"] == "Active"
    assert configuration["Architectures"] in (["x86_64"], ["arm64"])
    code = Path(lambda_client(serve).get_function(FunctionName="alpha")["Code"]["Location"][7:])
    assert configuration["CodeSize"] == sum(f.stat().st_size for f in code.iterdir())
    modified = datetime.datetime.strptime(configuration["LastModified"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert abs(modified.timestamp() - datetime.datetime.now().timestamp()) < 3600


def test_get_function_gives_configuration_and_code(serve: Serve) -> None:
    client = lambda_client(serve)
    answer = client.get_function(FunctionName="bravo")
    assert answer["Configuration"]["FunctionName"] == "bravo"
    assert answer["Configuration"]["Handler"] == "function.echo_event"
    assert answer["Configuration"]["Runtime"] == "provided.al2023"  # a bootstrap
    configuration = client.get_function_configuration(FunctionName="bravo")
    configuration.pop("ResponseMetadata")
    assert answer["Configuration"] == configuration
    assert answer["Code"] == {"RepositoryType": "S3", "Location": BASH_RUNTIME.as_uri()}
    by_arn = client.get_function(
        FunctionName="arn:aws:lambda:eu-west-1:123456789012:function:bravo", Qualifier="$LATEST"
    )
    assert by_arn["Configuration"]["FunctionName"] == "bravo"


def test_unknown_functions_and_versions_are_resource_not_found(serve: Serve) -> None:
    client = lambda_client(serve)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.get_function(FunctionName="missing")
    assert "arn:aws:lambda:eu-west-1:123456789012:function:missing" in str(caught.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_configuration(FunctionName="alpha", Qualifier="7")
    conn = serve.connection()  # botocore checks MaxItems itself
    conn.request("GET", "/2015-03-31/functions/?MaxItems=0")
    response = conn.getresponse()
    assert response.status == 400
    assert response.getheader("x-amzn-ErrorType") == "InvalidParameterValueException"
    assert "maxItems" in json.loads(response.read())["message"]
    conn.close()


def test_list_functions_pages_in_name_order(serve: Serve) -> None:
    client = lambda_client(serve)
    everything = client.list_functions()
    assert [f["FunctionName"] for f in everything["Functions"]] == list(_NAMES)
    assert "NextMarker" not in everything
    first = client.list_functions(MaxItems=2)
    assert [f["FunctionName"] for f in first["Functions"]] == ["alpha", "bravo"]
    second = client.list_functions(MaxItems=2, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in second["Functions"]] == ["charlie", "delta"]
    pages = client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2})
    sizes, names = [], []
    for page in pages:
        sizes.append(len(page["Functions"]))
        names += [f["FunctionName"] for f in page["Functions"]]
    assert sizes == [2, 2, 1] and names == list(_NAMES)


def _aws(serve: Serve, *args: str) -> Any:
    """The AWS CLI with only the region and credentials in its environment."""
    result = aws_cli(serve, *args, region="eu-west-1")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_aws_cli_lists_and_gets_functions(serve: Serve) -> None:
    listed = _aws(serve, "list-functions", "--page-size", "2")  # the CLI follows the markers
    assert [f["FunctionName"] for f in listed["Functions"]] == list(_NAMES)
    got = _aws(serve, "get-function", "--function-name", "alpha")
    assert got["Configuration"]["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert got["Code"]["RepositoryType"] == "S3"
    configuration = _aws(serve, "get-function-configuration", "--function-name", "charlie")
    assert configuration["FunctionArn"].endswith(":function:charlie")
