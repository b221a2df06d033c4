"""Running a runtime behind a proxy: spawn, forward signals, reap, hand back its exit status.

This is the parent-process half of every proxy built on :mod:`lambdakit.proxy`: as a custom
runtime's ``bootstrap``, a container's ENTRYPOINT or an ``AWS_LAMBDA_EXEC_WRAPPER`` script, the
proxy process starts the real runtime as its child with ``AWS_LAMBDA_RUNTIME_API`` pointing at
the proxy (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), forwards the
signals Lambda sends it (SIGTERM at shutdown) and exits with the child's status, so that Lambda
sees a runtime that crashed as crashed.  Configuration problems found before the child exists
are reported through ``/runtime/init/error``, as a runtime's own would be
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-initerror).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from lambdakit.deathsig import die_with_parent
from lambdakit.proxy.server import RuntimeApiProxy, split_address
from lambdakit.wire import environment as env
from lambdakit.wire import errors, paths
from lambdakit.wire import headers as h

logger = logging.getLogger("lambdakit.proxy.supervise")

#: Signals passed on to the runtime (SIGTERM is Lambda's shutdown signal).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: How long reporting an init error may take before we give up on it, seconds.
INIT_ERROR_TIMEOUT = 2.0


#: How long, once the runtime exited, its connections may take to deliver what it sent.
SETTLE_TIMEOUT = 1.0


def exit_status(returncode: int) -> int:
    """A child's return code as our exit status: killed by signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_runtime(command: Sequence[str], proxy: RuntimeApiProxy, environ: Mapping[str, str]) -> int:
    """Start ``command`` behind the started ``proxy``; return its exit status once it exits.

    Call it from the main thread, so that signals reach the runtime (elsewhere they are not
    forwarded).  The proxy's hooks are closed (``Hooks.close``) and the proxy itself closed
    before this returns, whatever happens.
    """
    child_env = {**environ, env.RUNTIME_API: proxy.address}
    try:
        try:
            # close_fds=False: the runtime inherits what Lambda gave us (the managed runtimes'
            # _LAMBDA_TELEMETRY_LOG_FD); our own sockets are not inheritable anyway.
            # die_with_parent: one prctl call between fork and exec (safe with our threads).
            child = subprocess.Popen(
                list(command),
                env=child_env,
                close_fds=False,
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        except OSError as exc:
            message = f"cannot start the runtime {command[0]!r}: {exc.strerror or exc}"
            logger.error("%s", message)
            report_init_error(proxy.upstream, errors.RUNTIME_INVALID_ENTRYPOINT, message)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        logger.debug("runtime started with PID %d: %s", child.pid, " ".join(command))
        previous = _forward_signals(child.pid)
        try:
            code = child.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if child.returncode is None:  # we are being interrupted: do not leave it behind
                child.kill()
                child.wait()
        logger.debug("runtime exited with status %d", code)
        # What the runtime posted before it exited still reaches the Runtime API.
        if not proxy.settle(SETTLE_TIMEOUT):
            logger.debug("runtime connections still open %.1f s after its exit", SETTLE_TIMEOUT)
        return exit_status(code)
    finally:
        proxy.hooks.close()
        proxy.close()


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _forward_signals(pid: int) -> dict[int, _Handler]:
    """Install handlers passing :data:`FORWARDED_SIGNALS` to ``pid``; the previous handlers."""

    def forward(signum: int, frame: FrameType | None) -> None:
        logger.debug("forwarding %s to the runtime", signal.Signals(signum).name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)  # not yet reaped: the PID is still the runtime's

    previous: dict[int, _Handler] = {}
    for signum in FORWARDED_SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[signum] = signal.signal(signum, forward)
    return previous


def report_init_error(api: str, error_type: str, message: str) -> bool:
    """POST ``/runtime/init/error`` to ``api`` (host:port); False if that failed (logged)."""
    body = errors.error_body(error_type, message)
    try:
        host, port = split_address(api)
        connection = http.client.HTTPConnection(host, port, timeout=INIT_ERROR_TIMEOUT)
        try:
            connection.request(
                "POST",
                paths.RUNTIME_INIT_ERROR,
                body,
                {h.FUNCTION_ERROR_TYPE: error_type, h.CONTENT_TYPE: h.JSON_CONTENT_TYPE},
            )
            status = connection.getresponse().status
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        logger.error("could not report the init error to %s: %s", api, exc)
        return False
    if status >= 300:
        logger.error("the Runtime API refused the init error report: HTTP %d", status)
    return status < 300
