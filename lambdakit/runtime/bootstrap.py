"""The runtime loop: load the handler (init), then serve events until the process ends.

Init errors are reported to ``/init/error`` and end the process with status 1, as awslambdaric
4.x does; errors of an invocation are posted to its ``/error`` and the loop goes on.  With
``AWS_LAMBDA_MAX_CONCURRENCY`` set, ``runtime/managed.py`` (imported only then) runs N such loops
at once.  A handler that returns a generator, an async generator or a ``@streamify_response``
call is streamed (``runtime/streaming.py``, imported then).
"""

from __future__ import annotations

import os
import sys
import types

from lambdakit.runtime import fastjson, lifecycle, logs, shutdown
from lambdakit.runtime.client import PostRejected, RuntimeApiClient
from lambdakit.runtime.config import RuntimeConfig
from lambdakit.runtime.context import LambdaContext
from lambdakit.runtime.errors import (
    ErrorReport,
    FaultError,
    ascii_header,
    is_user_error,
    report_exception,
    report_fault,
)
from lambdakit.runtime.handler import load_handler
from lambdakit.runtime.marshal import marshal_response, unmarshal_event
from lambdakit.runtime.scope import SCOPE
from lambdakit.runtime.transport import RuntimeApiError
from lambdakit.wire import environment as env
from lambdakit.wire import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    from lambdakit.runtime.client import NextEvent

#: X-Ray exception type for errors the runtime raises itself (bad handler, marshalling).
VALIDATION_FAULT = "LambdaValidationError"
_FORBIDDEN = 403


class Runtime:
    """One runtime process: its configuration, its Runtime API client and its lifecycle."""

    def __init__(
        self,
        config: RuntimeConfig,
        client: RuntimeApiClient,
        environ: MutableMapping[str, str] | None = None,
        *,
        trace_in_environ: bool = True,
    ) -> None:
        self._config = config
        self._client = client
        self._environ = os.environ if environ is None else environ
        self._lifecycle = lifecycle.Lifecycle()
        self._handler: Callable[..., object] | None = None
        #: Set ``_X_AMZN_TRACE_ID`` per invocation (not when invocations share the process).
        self._trace_in_environ = trace_in_environ

    @property
    def handler(self) -> Callable[..., object]:
        assert self._handler is not None, "no handler before a successful init()"
        return self._handler

    def worker(self, client: RuntimeApiClient, *, trace_in_environ: bool) -> Runtime:
        """A runtime loop of its own (Managed Instances mode) sharing this one's loaded handler."""
        clone = Runtime(self._config, client, self._environ, trace_in_environ=trace_in_environ)
        clone._handler = self.handler
        clone._lifecycle.fire("loaded")
        return clone

    def init(self) -> bool:
        """Import the handler; on failure log and report the error and return False."""
        SCOPE.serving = True
        try:
            self._handler = load_handler(self._config.handler)
        except FaultError as fault:
            self._fail_init(report_fault(fault))
            return False
        except Exception as exc:
            self._fail_init(report_exception(exc))
            return False
        shutdown.arm()
        self._lifecycle.fire("loaded")
        return True

    def _fail_init(self, report: ErrorReport) -> None:
        self._lifecycle.fire("init_failed")
        logs.write_init_warning(json_logs=self._config.json_logs)
        logs.write_error_report(report, "", json_logs=self._config.json_logs)
        try:
            self._client.post_init_error(report.body(), ascii_header(report.error_type))
        except PostRejected as exc:
            # Managed Instances: the init error may already be posted (403); it is reported.
            if self._config.max_concurrency is None or exc.status != _FORBIDDEN:
                raise

    def serve_forever(self) -> None:
        while True:
            self.serve_one()

    def serve_one(self) -> None:
        """Wait for one event, handle it, post the result and run its after-response tasks."""
        invocation = self._client.next_invocation()
        self._lifecycle.fire("event")
        SCOPE.begin(invocation.request_id, invocation.tenant_id, invocation.trace_id)
        try:
            if self._trace_in_environ:
                self._set_trace_id(invocation.trace_id)
            self._invoke(invocation)
            self._lifecycle.fire("posted")
            if SCOPE.tasks:
                from lambdakit.runtime.tasks import run_tasks

                run_tasks(invocation.deadline_ms)
        finally:
            SCOPE.end()
        shutdown.arm()
        self._lifecycle.fire("done")

    def prepare(self, invocation: NextEvent) -> tuple[object, LambdaContext]:
        """The handler's arguments (event, context); the context becomes the scope's."""
        context = self._context(invocation)
        SCOPE.context = context
        return unmarshal_event(invocation.body, invocation.content_type), context

    def _invoke(self, invocation: NextEvent) -> None:
        assert self._handler is not None, "serve_one() before a successful init()"
        try:
            event, context = self.prepare(invocation)
            result = self._handler(event, context)
            if _is_streaming(result):
                from lambdakit.runtime.streaming import stream_response

                json_logs = self._config.json_logs
                stream_response(self._client, invocation, result, json_logs=json_logs)
                return
            if isinstance(result, types.CoroutineType):
                from lambdakit.runtime import aio

                result = aio.run(result)
            body, content_type = marshal_response(result)
        except FaultError as fault:
            self.post_error(invocation, report_fault(fault), VALIDATION_FAULT)
        except BaseException as exc:
            if not is_user_error(exc):
                raise  # SystemExit, KeyboardInterrupt: as awslambdaric
            self.post_error(invocation, report_exception(exc), None)
        else:
            self.post_response(invocation, body, content_type)

    def post_response(self, invocation: NextEvent, body: bytes, content_type: str) -> None:
        self._post(self._client.post_response, invocation, body, content_type)

    def post_error(self, invocation: NextEvent, report: ErrorReport, fault: str | None) -> None:
        """Log the error and post it to the invocation's ``/error``."""
        logs.write_error_report(report, invocation.request_id, json_logs=self._config.json_logs)
        body = report.body(invocation.request_id)
        cause = report.xray_cause(fault)
        error_type = ascii_header(report.error_type)
        self._post(self._client.post_error, invocation, body, error_type, cause)

    def _post(self, post: Callable[..., None], *args: object) -> None:
        try:
            post(*args)
        except RuntimeApiError as exc:
            # A rejected post (e.g. 413) is the platform's to report to the caller.  In Managed
            # Instances mode a failed post is only logged too: the other invocations go on.
            if not isinstance(exc, PostRejected) and self._config.max_concurrency is None:
                raise
            import logging

            logging.getLogger("lambdakit.runtime").warning("%s", exc)

    def _context(self, invocation: NextEvent) -> LambdaContext:
        return LambdaContext(
            aws_request_id=invocation.request_id,
            deadline_ms=invocation.deadline_ms,
            invoked_function_arn=invocation.invoked_function_arn,
            tenant_id=invocation.tenant_id,
            client_context=_json_header(invocation.client_context, "Client Context"),
            cognito_identity=_json_header(invocation.cognito_identity, "Cognito Identity"),
            environ=self._environ,
        )

    def _set_trace_id(self, trace_id: str | None) -> None:
        if trace_id:
            self._environ[env.TRACE_ID] = trace_id
        else:
            self._environ.pop(env.TRACE_ID, None)


def _is_streaming(result: object) -> bool:
    """A generator, an async generator, or a ``@streamify_response`` call: stream it.

    ``lambdakit.streaming`` is looked up, not imported: if the handler's module did not import
    it, the result cannot be one of its objects.
    """
    if isinstance(result, (types.GeneratorType, types.AsyncGeneratorType)):
        return True
    streaming = sys.modules.get("lambdakit.streaming")
    return streaming is not None and isinstance(result, streaming.StreamingResponse)


def _json_header(value: str | None, name: str) -> Mapping[str, object] | None:
    if not value:
        return None
    try:
        parsed = fastjson.loads(value)
    except Exception as exc:
        raise FaultError(
            errors.RUNTIME_CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {exc}"
        ) from exc
    return parsed if isinstance(parsed, dict) else None


def run(argv: list[str], environ: MutableMapping[str, str] | None = None) -> int:
    """Start the runtime; returns only when init fails (status 1)."""
    environ = os.environ if environ is None else environ
    config = RuntimeConfig.from_environ(argv, environ)
    logs.unbuffer_std_streams()
    logs.install_logging(config)
    if config.task_root and config.task_root not in sys.path:
        sys.path.insert(0, config.task_root)
    runtime = Runtime(config, RuntimeApiClient(config.api_address), environ)
    if config.max_concurrency is not None:  # Lambda Managed Instances: N loops at once
        from lambdakit.runtime.managed import run as run_managed

        return run_managed(runtime, config)
    if not runtime.init():
        return 1
    runtime.serve_forever()
    return 0
