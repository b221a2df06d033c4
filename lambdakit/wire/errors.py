"""Error types and error bodies of the three interfaces.

Runtime API errors: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
Invoke API errors: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors
Platform error payloads follow AWS's RIE:
``{"errorType": T, "errorMessage": "RequestId: ID Error: ..."}``.
"""

from __future__ import annotations

# --- Runtime API (answers to the runtime) ---------------------------------------------------
INVALID_REQUEST_ID = "InvalidRequestID"
#: Managed Instances: a result for an invocation that timed out (410).
INVOKE_TIMEOUT = "InvokeTimeout"
INVALID_STATE_TRANSITION = "InvalidStateTransition"
REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
INVALID_RESPONSE_MODE = "InvalidFunctionResponseMode"

# --- Platform errors (what a caller sees in errorType) ---------------------------------------
RUNTIME_EXIT_ERROR = "Runtime.ExitError"
RUNTIME_INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
RUNTIME_UNKNOWN = "Runtime.Unknown"
RUNTIME_TRUNCATED_RESPONSE = "Runtime.TruncatedResponse"
FUNCTION_RESPONSE_SIZE_TOO_LARGE = "Function.ResponseSizeTooLarge"
SANDBOX_TIMEDOUT = "Sandbox.Timedout"
SANDBOX_FAILURE = "Sandbox.Failure"

# --- Runtime-reported errors (what a Python runtime posts as errorType) -----------------------
# The strings awslambdaric reports; callers and log filters match on them.
RUNTIME_IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
RUNTIME_HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
RUNTIME_USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
RUNTIME_MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
RUNTIME_BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
RUNTIME_MARSHAL_ERROR = "Runtime.MarshalError"
RUNTIME_UNMARSHAL_ERROR = "Runtime.UnmarshalError"
RUNTIME_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

# --- Invoke API service errors (x-amzn-ErrorType) --------------------------------------------
RESOURCE_NOT_FOUND = "ResourceNotFoundException"  # 404
INVALID_REQUEST_CONTENT = "InvalidRequestContentException"  # 400
INVALID_PARAMETER_VALUE = "InvalidParameterValueException"  # 400
REQUEST_TOO_LARGE = "RequestTooLargeException"  # 413
TOO_MANY_REQUESTS = "TooManyRequestsException"  # 429
SERVICE_EXCEPTION = "ServiceException"  # 500
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaTypeException"  # 415

#: Status code of each service error type.
SERVICE_ERROR_STATUS = {
    RESOURCE_NOT_FOUND: 404,
    INVALID_REQUEST_CONTENT: 400,
    INVALID_PARAMETER_VALUE: 400,
    REQUEST_TOO_LARGE: 413,
    TOO_MANY_REQUESTS: 429,
    SERVICE_EXCEPTION: 500,
    UNSUPPORTED_MEDIA_TYPE: 415,
}

#: X-Amz-Function-Error value for errors the function did not catch.
UNHANDLED = "Unhandled"


def error_body(error_type: str, message: str) -> bytes:
    """The ``{"errorMessage", "errorType"}`` body used by both the Runtime API and runtimes."""
    import json  # lazily: the runtime client imports this module during every cold start

    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def platform_error_body(error_type: str, request_id: str, detail: str) -> bytes:
    """A platform failure as the caller sees it: ``RequestId: <id> Error: <detail>``."""
    return error_body(error_type, f"RequestId: {request_id} Error: {detail}")


def service_error_body(message: str, **extra: str) -> bytes:
    """A service error body, as boto3 parses it (``Type``, ``message``, and any extra members)."""
    import json

    return json.dumps({"Type": "User", "message": message, **extra}).encode()


# --- Extensions API (403 answers to an extension) -------------------------------------------
# https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html; names as AWS's RIE.
EXTENSION_INVALID_NAME = "Extension.InvalidExtensionName"
EXTENSION_REGISTRATION_CLOSED = "Extension.RegistrationClosed"
EXTENSION_TOO_MANY = "Extension.TooManyExtensions"
EXTENSION_INVALID_STATE = "Extension.InvalidExtensionState"
EXTENSION_INVALID_EVENT_TYPE = "Extension.InvalidEventType"
EXTENSION_MISSING_IDENTIFIER = "Extension.MissingExtensionIdentifier"
EXTENSION_INVALID_IDENTIFIER = "Extension.InvalidExtensionIdentifier"
EXTENSION_UNKNOWN_IDENTIFIER = "Extension.UnknownExtensionIdentifier"
EXTENSION_MISSING_HEADER = "Extension.MissingHeader"
INVALID_REQUEST_FORMAT = "InvalidRequestFormat"

# --- Extension platform errors (what a caller sees) ---------------------------------------------
EXTENSION_INIT_ERROR = "Extension.InitError"
EXTENSION_EXIT_ERROR = "Extension.ExitError"
EXTENSION_CRASH = "Extension.Crash"
EXTENSION_LAUNCH_ERROR = "Extension.LaunchError"

# --- Telemetry / Logs API ---------------------------------------------------------------------
VALIDATION_ERROR = "ValidationError"
