"""Environment variables of the execution environment, as a runtime sees them.

Defined runtime environment variables:
https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
Custom runtimes: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html
Logging controls: https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html
"""

from __future__ import annotations

#: ``host:port`` of the Runtime API.
RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
#: The handler string (``module.function``), the function's "Handler" setting.
HANDLER = "_HANDLER"
#: Where the function code lives (``/var/task`` on Lambda).
TASK_ROOT = "LAMBDA_TASK_ROOT"
#: ``AWS_Lambda_python3.12`` and the like on managed runtimes; unset in custom images.
EXECUTION_ENV = "AWS_EXECUTION_ENV"
#: A wrapper script the runtime is started through (``otel-instrument``, Datadog ...).
EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"

FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"
FUNCTION_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
LOG_GROUP_NAME = "AWS_LAMBDA_LOG_GROUP_NAME"
LOG_STREAM_NAME = "AWS_LAMBDA_LOG_STREAM_NAME"
REGION = "AWS_REGION"

#: ``Text`` (default) or ``JSON``.
LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"
#: ``TRACE``, ``DEBUG``, ``INFO``, ``WARN``, ``ERROR``, ``FATAL``.
LOG_LEVEL = "AWS_LAMBDA_LOG_LEVEL"
#: A file descriptor for framed log records (managed runtimes); the runtime unsets it after reading.
TELEMETRY_LOG_FD = "_LAMBDA_TELEMETRY_LOG_FD"

#: Set by the runtime before each invocation from the ``Lambda-Runtime-Trace-Id`` header.
TRACE_ID = "_X_AMZN_TRACE_ID"
