"""Header names, lower-cased (HTTP header names are case-insensitive; we compare lower-case).

Runtime API headers: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
Invoke API headers: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
"""

from __future__ import annotations

# GET /runtime/invocation/next response headers.
REQUEST_ID = "lambda-runtime-aws-request-id"
DEADLINE_MS = "lambda-runtime-deadline-ms"
INVOKED_FUNCTION_ARN = "lambda-runtime-invoked-function-arn"
TRACE_ID = "lambda-runtime-trace-id"
CLIENT_CONTEXT = "lambda-runtime-client-context"
COGNITO_IDENTITY = "lambda-runtime-cognito-identity"
TENANT_ID = "lambda-runtime-aws-tenant-id"
#: Sent by newer Runtime APIs; a runtime echoes it on /response and /error (awslambdaric 4.2).
INVOCATION_ID = "lambda-runtime-invocation-id"

# Runtime -> Runtime API request headers.
FUNCTION_ERROR_TYPE = "lambda-runtime-function-error-type"
FUNCTION_ERROR_BODY = "lambda-runtime-function-error-body"
FUNCTION_RESPONSE_MODE = "lambda-runtime-function-response-mode"
#: The only documented value of ``Lambda-Runtime-Function-Response-Mode``: a chunked body whose
#: errors, if any, arrive as ``Lambda-Runtime-Function-Error-*`` trailers.
RESPONSE_MODE_STREAMING = "streaming"
ERROR_CONTENT_TYPE = "application/vnd.aws.lambda.error+json"
#: X-Ray cause of an invocation error (JSON); runtimes leave it out at 1 MiB or more.
XRAY_ERROR_CAUSE = "lambda-runtime-function-xray-error-cause"
XRAY_ERROR_CAUSE_MAX = 1024 * 1024

# Generic HTTP/1.1 headers the runtime client reads and writes.
CONTENT_TYPE = "content-type"
CONTENT_LENGTH = "content-length"
TRANSFER_ENCODING = "transfer-encoding"
CONNECTION = "connection"
HOST = "host"
USER_AGENT = "user-agent"
#: ``100-continue``: curl sends it with bodies over 1 KiB and waits for an interim 100 reply.
EXPECT = "expect"
#: Announces the trailer fields of a chunked body (RFC 9110 §6.6.2).
TRAILER = "trailer"

# Content types of events and responses.
JSON_CONTENT_TYPE = "application/json"
#: What a Python runtime sends when the handler returns ``bytes`` (awslambdaric does the same).
BINARY_CONTENT_TYPE = "application/unknown"
#: A streamed response's content type unless the function sets one (Node's runtime does the same).
STREAM_CONTENT_TYPE = "application/octet-stream"
#: A streamed HTTP response for a Function URL (or API Gateway ``responseTransferMode: STREAM``):
#: the body starts with a JSON prelude ``{"statusCode", "headers", "cookies"}`` followed by
#: ``HTTP_INTEGRATION_DELIMITER``, then the payload.
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
HTTP_INTEGRATION_DELIMITER = b"\x00" * 8

# Invoke API request headers.
INVOCATION_TYPE = "x-amz-invocation-type"
LOG_TYPE = "x-amz-log-type"
AMZ_CLIENT_CONTEXT = "x-amz-client-context"
AMZ_TENANT_ID = "x-amz-tenant-id"
AMZN_TRACE_ID = "x-amzn-trace-id"
#: Sent by AWS SDKs; the same on every retry of one call.
SDK_INVOCATION_ID = "amz-sdk-invocation-id"

# Invoke API response headers.
AMZN_REQUEST_ID = "x-amzn-RequestId"
FUNCTION_ERROR = "X-Amz-Function-Error"
EXECUTED_VERSION = "X-Amz-Executed-Version"
LOG_RESULT = "X-Amz-Log-Result"
ERROR_TYPE = "x-amzn-ErrorType"
RETRY_AFTER = "Retry-After"

# Invocation types (X-Amz-Invocation-Type).
REQUEST_RESPONSE = "RequestResponse"
EVENT = "Event"
DRY_RUN = "DryRun"

# Extensions API headers.
EXTENSION_NAME = "lambda-extension-name"
EXTENSION_IDENTIFIER = "lambda-extension-identifier"
EXTENSION_ACCEPT_FEATURE = "lambda-extension-accept-feature"
EXTENSION_EVENT_IDENTIFIER = "lambda-extension-event-identifier"
EXTENSION_ERROR_TYPE = "lambda-extension-function-error-type"
