"""Numeric limits of the interfaces.

Quotas: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
"""

from __future__ import annotations

#: Synchronous invocation payload, request and response: "6 MB".  AWS's RIE and moto use
#: 6 MiB + 100 bytes as the exact limit (RIE internal/lambda/interop/model.go MaxPayloadSize).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024 + 100
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
