"""Numeric limits of the interfaces.

Quotas: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
"""

from __future__ import annotations

#: Synchronous invocation payload, request and response: "6 MB".  AWS's RIE and moto use
#: 6 MiB + 100 bytes as the exact limit (RIE internal/lambda/interop/model.go MaxPayloadSize).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024 + 100
#: A streamed response (InvokeWithResponseStream, Function URLs): 200 MB.
MAX_STREAMED_PAYLOAD = 200 * 1024 * 1024
#: Asynchronous (Event) invocation payload: 1 MB.
MAX_ASYNC_PAYLOAD = 1024 * 1024
#: X-Amz-Client-Context, base64-encoded.
MAX_CLIENT_CONTEXT = 3583
#: Function timeout range, seconds.
MIN_TIMEOUT = 1
MAX_TIMEOUT = 900
#: Memory range, MB.
MIN_MEMORY = 128
MAX_MEMORY = 10240
#: Init phase limit for on-demand functions, seconds.
INIT_TIMEOUT = 10.0
#: Billing granularity, ms.
BILLING_GRANULARITY_MS = 1
#: Bytes of log kept for X-Amz-Log-Result ("the last 4 KB").
LOG_TAIL_BYTES = 4096
#: Lambda Managed Instances: invocations at once in one environment (our bound, not AWS's).
MAX_ENVIRONMENT_CONCURRENCY = 1024
#: "You can register up to 10 extensions for a function."
MAX_EXTENSIONS = 10
#: Shutdown budget with external extensions (ms), and the runtime's share of it.
SHUTDOWN_BUDGET_MS = 2000
SHUTDOWN_RUNTIME_SHARE_MS = 300
#: Telemetry API buffering: (default, minimum, maximum).
TELEMETRY_MAX_ITEMS = (10_000, 1_000, 10_000)
TELEMETRY_MAX_BYTES = (262_144, 262_144, 1_048_576)
TELEMETRY_TIMEOUT_MS = (1_000, 25, 30_000)
