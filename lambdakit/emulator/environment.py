"""The environment variables an execution environment's processes see.

Reserved and default variables follow
https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html.  On this machine there
is no ``/var/task``: ``LAMBDA_TASK_ROOT`` is the function's code directory, and ``PATH`` and
``HOME`` come from the host so that local tools (bash, curl, a virtualenv's python) resolve,
and the host's AWS credentials unless ``--aws-credentials none`` (then placeholders, which AWS
SDKs need to sign their calls to this service);
layers add their directories to the search paths (:mod:`lambdakit.emulator.layers`).
Under ``serve --watch`` Python writes no bytecode caches (``PYTHONDONTWRITEBYTECODE``, unless
the function sets it): a ``.pyc`` is trusted when its source's mtime (in whole seconds) and size
match, so an edit of the same size within the second of an Init would go unseen.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping

from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.layers import layer_environment

#: Host variables passed through to every environment when the user has not set them.
_HOST_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "AWS_ENDPOINT_URL_LAMBDA")
#: The host's AWS keys and profile (serve names those it passes at start).
HOST_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
#: The host's AWS credentials, passed through under ``--aws-credentials host`` (the default).
HOST_CREDENTIALS = (*HOST_KEYS, "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
#: Under ``--aws-credentials none`` an SDK must not find the user's files under HOME either.
_NO_CREDENTIAL_FILES = {"AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
#: Credentials given when the user has none, so that AWS SDKs sign requests to this service.
_PLACEHOLDER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIALAMBDAKITLOCAL00",
    "AWS_SECRET_ACCESS_KEY": "lambdakit-local-placeholder-secret",
}


def log_stream_name(version: str) -> str:
    """A CloudWatch-style stream name: ``2026/11/22/[$LATEST]<32 hex digits>``."""
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
    return f"{today}/[{version}]{os.urandom(16).hex()}"


def sandbox_environment(
    service: ServiceConfig,
    function: FunctionConfig,
    runtime_api: str,
    host_environ: Mapping[str, str],
) -> dict[str, str]:
    """Build the environment of one sandbox's runtime process."""
    passed = _HOST_PASSTHROUGH + (HOST_CREDENTIALS if service.aws_credentials == "host" else ())
    env = {name: host_environ[name] for name in passed if name in host_environ}
    if service.aws_credentials == "none":
        env.update(_NO_CREDENTIAL_FILES)
    env.update(
        {
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": service.region,
            "AWS_DEFAULT_REGION": service.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(function.version),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
        }
    )
    if function.handler:
        env["_HANDLER"] = function.handler
    if service.watch:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if service.log_format == "json" or function.max_concurrency is not None:
        # Lambda's LoggingConfig: LogFormat JSON reaches the runtime as this variable; Managed
        # Instances log in JSON only.
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    env.update(layer_environment(function.layers, env))
    env.update(function.env)
    if function.max_concurrency is not None:
        # https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html (Managed Instances)
        env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(function.max_concurrency)
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "lambda-managed-instances"
    if "AWS_ACCESS_KEY_ID" not in env and "AWS_PROFILE" not in env:
        env.update(_PLACEHOLDER_CREDENTIALS)
    # The Runtime API address is the platform's, never the user's.
    env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    return env


#: Variables Lambda shows the runtime but not extensions.
_RUNTIME_ONLY = frozenset(
    {
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
        "_AWS_XRAY_DAEMON_ADDRESS",
        "_AWS_XRAY_DAEMON_PORT",
        "_HANDLER",
    }
)


def extension_environment(runtime_env: Mapping[str, str]) -> dict[str, str]:
    """An external extension's environment: the function's, less the runtime-only variables."""
    return {name: value for name, value in runtime_env.items() if name not in _RUNTIME_ONLY}
