"""ListFunctions, GetFunction and GetFunctionConfiguration, answered from the configuration.

https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html,
https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html,
https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionConfiguration.html

``GET /2015-03-31/functions/`` (``MaxItems``, ``Marker``), ``GET /2015-03-31/functions/{name}``
and ``GET /2015-03-31/functions/{name}/configuration`` (``Qualifier``: only ``$LATEST``), in the
shapes boto3 and the AWS CLI read.  A ``FunctionConfiguration`` holds what the service knows:
name, ARN, handler, timeout, memory, the function's own variables, ``Runtime`` when the function
runs on lambdakit's Python runtime (``pythonX.Y``) or is a ``bootstrap`` (``provided.al2023``);
``CodeSize`` and ``LastModified`` are the size of the code directory's files and the newest of
their modification times, read when asked (so they follow the edits ``serve --watch`` reloads).
The marker of a page is the last name it listed: functions are listed in name order.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs

from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.doors.invoke_api import parse_function_name, service_error
from lambdakit.emulator.http import Request, Response
from lambdakit.wire import errors

#: The prefix of every path answered here (the Invoke API's, without a trailing operation).
PREFIX = "/2015-03-31/functions"
_JSON = "application/json"
_MAX_ITEMS = 10_000
#: ListFunctions's page size when the caller gives none (Lambda's).
_DEFAULT_ITEMS = 50
#: Files read for CodeSize and LastModified at most (a code directory that is a whole tree).
_MAX_FILES = 20_000
_SKIPPED_DIRECTORIES = frozenset({".git", "__pycache__", ".lambdakit", "node_modules", ".venv"})


def handles(request: Request) -> bool:
    """Whether ``request`` is one of these operations (by path and method)."""
    return request.method == "GET" and (
        request.path == PREFIX or request.path.startswith(PREFIX + "/")
    )


class FunctionInfo:
    """Answers the three read operations for the functions of ``service``."""

    def __init__(self, service: ServiceConfig) -> None:
        self._service = service

    def __call__(self, request: Request) -> Response:
        rest = request.path[len(PREFIX) :].strip("/")
        query = parse_qs(request.query)
        if not rest:
            return self._list(query)
        raw_name, _, operation = rest.partition("/")
        if operation not in ("", "configuration"):
            return service_error(
                "UnknownOperationException", f"Unknown operation GET {request.path}"
            )
        found = self._function(raw_name, query)
        if isinstance(found, Response):
            return found
        configuration = function_configuration(self._service, found)
        if operation == "configuration":
            return _json(configuration)
        return _json(
            {
                "Configuration": configuration,
                "Code": {"RepositoryType": "S3", "Location": found.code_dir.as_uri()},
                "Tags": {},
            }
        )

    def _function(self, raw_name: str, query: Mapping[str, list[str]]) -> FunctionConfig | Response:
        parsed = parse_function_name(raw_name)
        if parsed is None:
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                f"1 validation error detected: Value '{raw_name}' at 'functionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern",
            )
        name, qualifier = parsed
        qualifier = query.get("Qualifier", [""])[0] or qualifier
        function = self._service.functions.get(name)
        if function is None or qualifier not in ("", "$LATEST"):
            arn = self._service.function_arn(name) + (f":{qualifier}" if qualifier else "")
            return service_error(errors.RESOURCE_NOT_FOUND, f"Function not found: {arn}")
        return function

    def _list(self, query: Mapping[str, list[str]]) -> Response:
        given = query.get("MaxItems", [""])[0]
        limit = _DEFAULT_ITEMS
        if given:
            if not given.isdigit() or not 1 <= int(given) <= _MAX_ITEMS:
                return service_error(
                    errors.INVALID_PARAMETER_VALUE,
                    f"1 validation error detected: Value '{given}' at 'maxItems' failed to "
                    f"satisfy constraint: Member must be between 1 and {_MAX_ITEMS}",
                )
            limit = int(given)
        marker = query.get("Marker", [""])[0]
        names = [name for name in sorted(self._service.functions) if name > marker]
        page = names[:limit]
        body: dict[str, object] = {
            "Functions": [
                function_configuration(self._service, self._service.functions[name])
                for name in page
            ]
        }
        if len(names) > limit:
            body["NextMarker"] = page[-1]
        return _json(body)


def function_configuration(service: ServiceConfig, function: FunctionConfig) -> dict[str, object]:
    """The ``FunctionConfiguration`` of ``function``, as Lambda's API spells its fields."""
    size, modified = code_stats(function.code_dir)
    configuration: dict[str, object] = {
        "FunctionName": function.name,
        "FunctionArn": service.function_arn(function.name),
        "Role": f"arn:aws:iam::{service.account_id}:role/lambdakit-local",
        "Handler": function.handler,
        "CodeSize": size,
        "Description": "",
        # Lambda's Timeout is whole seconds; lambdakit takes fractions.
        "Timeout": max(1, math.ceil(function.timeout)),
        "MemorySize": function.memory,
        "LastModified": _lambda_time(modified),
        "Version": function.version,
        "Environment": {"Variables": dict(function.env)},
        "TracingConfig": {"Mode": "PassThrough"},
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [_architecture()],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {
            "LogFormat": "JSON" if service.log_format == "json" else "Text",
            "LogGroup": f"/aws/lambda/{function.name}",
        },
    }
    runtime = runtime_identifier(function)
    if runtime:
        configuration["Runtime"] = runtime
    return configuration


def runtime_identifier(function: FunctionConfig) -> str:
    """``python3.X`` for lambdakit's Python runtime, ``provided.al2023`` for a bootstrap, or ""."""
    command = function.command
    if "-m" in command and "lambdakit.runtime" in command:
        return f"python{sys.version_info.major}.{sys.version_info.minor}"
    if len(command) == 1 and Path(command[0]).name == "bootstrap":
        return "provided.al2023"
    return ""


def code_stats(code_dir: Path) -> tuple[int, float]:
    """The size in bytes of the files under ``code_dir`` and their newest modification time."""
    size, newest, seen = 0, 0.0, 0
    for root, directories, files in os.walk(code_dir):
        directories[:] = [d for d in directories if d not in _SKIPPED_DIRECTORIES]
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            size += stat.st_size
            newest = max(newest, stat.st_mtime)
            seen += 1
            if seen >= _MAX_FILES:
                return size, newest
    return size, newest or _mtime(code_dir)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _lambda_time(timestamp: float) -> str:
    """``2026-12-04T10:56:01.123+0000``, Lambda's LastModified."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _architecture() -> str:
    return "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"


def _json(body: object) -> Response:
    return Response(200, (("Content-Type", _JSON),), json.dumps(body).encode())
