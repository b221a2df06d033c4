"""Payload vocabulary of the Extensions and Telemetry APIs.

Extensions API: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
Telemetry API: https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html
"""

from __future__ import annotations

# Event types an extension registers for (``{"events": [...]}``) and receives as ``eventType``.
INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"

#: ``shutdownReason`` of a SHUTDOWN event; the docs capitalise them, the wire does not.
SHUTDOWN_SPINDOWN = "spindown"
SHUTDOWN_TIMEOUT = "timeout"
SHUTDOWN_FAILURE = "failure"

#: The ``Lambda-Extension-Accept-Feature`` value that adds ``accountId`` to register's answer.
FEATURE_ACCOUNT_ID = "accountId"

#: The Telemetry API schema a subscriber asks for unless told otherwise.
TELEMETRY_SCHEMA = "2022-12-13"
#: Record categories: ``platform.*`` records, runtime output lines, extension output lines.
TELEMETRY_PLATFORM = "platform"
TELEMETRY_FUNCTION = "function"
TELEMETRY_EXTENSION = "extension"
#: The host a subscriber names in its destination URI; it means the execution environment.
SANDBOX_HOST = "sandbox.localdomain"
