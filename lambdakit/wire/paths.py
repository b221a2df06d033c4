"""URL paths of the three interfaces.

Runtime API: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
Invoke API: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
"""

from __future__ import annotations

# Runtime API, served at http://${AWS_LAMBDA_RUNTIME_API}
RUNTIME_PREFIX = "/2018-06-01/runtime"
RUNTIME_NEXT = RUNTIME_PREFIX + "/invocation/next"
RUNTIME_INIT_ERROR = RUNTIME_PREFIX + "/init/error"
RUNTIME_INVOCATION_PREFIX = RUNTIME_PREFIX + "/invocation/"
RESPONSE_SUFFIX = "/response"
ERROR_SUFFIX = "/error"
PING = "/2018-06-01/ping"


def runtime_response(request_id: str) -> str:
    """``POST`` target for a successful invocation result."""
    return RUNTIME_INVOCATION_PREFIX + request_id + RESPONSE_SUFFIX


def runtime_error(request_id: str) -> str:
    """``POST`` target for an invocation error."""
    return RUNTIME_INVOCATION_PREFIX + request_id + ERROR_SUFFIX


# Invoke API, what boto3 and the AWS CLI call.
INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"


def invoke(function_name: str) -> str:
    """``POST`` target of the synchronous Invoke API for ``function_name``."""
    return INVOKE_PREFIX + function_name + INVOKE_SUFFIX


# Extensions API, same host: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
EXTENSION_PREFIX = "/2020-01-01/extension"
EXTENSION_REGISTER = EXTENSION_PREFIX + "/register"
EXTENSION_NEXT = EXTENSION_PREFIX + "/event/next"
EXTENSION_INIT_ERROR = EXTENSION_PREFIX + "/init/error"
EXTENSION_EXIT_ERROR = EXTENSION_PREFIX + "/exit/error"

# Telemetry API: https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html
TELEMETRY = "/2022-07-01/telemetry"
# Logs API (superseded by the Telemetry API): https://docs.aws.amazon.com/lambda/latest/dg/runtimes-logs-api.html
LOGS = "/2020-08-15/logs"

# InvokeWithResponseStream: https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html
STREAMING_INVOKE_PREFIX = "/2021-11-15/functions/"
STREAMING_INVOKE_SUFFIX = "/response-streaming-invocations"
# InvokeAsync (deprecated, still called by boto3's invoke_async): 202 {"Status": 202}
INVOKE_ASYNC_PREFIX = "/2014-11-13/functions/"
INVOKE_ASYNC_SUFFIX = "/invoke-async"
