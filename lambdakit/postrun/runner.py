"""The post-runner's hooks: run the command after a result, hold the next event until it ends.

Theory of operation
-------------------
Lambda answers the caller as soon as the runtime posts ``/response`` (or ``/error``), and ends
the invocation, possibly freezing the environment, only when the runtime asks for the next
event (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).  So:

1. The proxy forwards the runtime's ``GET next`` and remembers the invocation in the reply
   (request id, ARN, deadline, event).
2. ``/response`` and ``/error`` go upstream at once, and the runtime has its ``202`` straight
   away: the caller has its answer and the runtime is not blocked.  Once the Runtime API has
   accepted the result, ``on_result`` starts the command if the outcome is one of the modes.
3. The runtime's next ``GET next`` waits in ``before_next`` until the command has finished (or
   been stopped), and only then goes upstream: the environment stays thawed while the command
   runs, and the next invocation on this environment starts after it.

The post-runner only observes (``Hooks.before_next``, ``Hooks.on_result``) and changes no call,
so the proxy carries each invocation's two calls through its fast lane.
The original holds the runtime's ``/response`` call instead, which blocks runtimes whose client
waits synchronously (Node.js) and gives the command no context.  The command is bounded by
``AWS_LAMBDA_POST_RUNNER_TIMEOUT`` and by the invocation's deadline, less :data:`DEADLINE_MARGIN`
so that the runtime's ``next`` still reaches Lambda in time; a failing command is logged and
never fails the invocation.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from lambdakit.postrun.command import GRACE, Command
from lambdakit.postrun.config import Outcome, PostRunConfig
from lambdakit.proxy.calls import CallKind, ProxiedInvocation, Result
from lambdakit.proxy.hooks import Hooks
from lambdakit.proxy.sockets import HungUp

logger = logging.getLogger("lambdakit.postrun")

#: The command is stopped this long before the function's deadline (plus :data:`GRACE`), so the
#: runtime's ``next`` reaches Lambda before the deadline resets the environment.
DEADLINE_MARGIN = 0.2
#: At most this much of a streamed response is kept for ``POST_RUNNER_RESULT_FILE``.
MAX_RECORDED = 20 * 1024 * 1024

# What the command finds in its environment.
REQUEST_ID = "POST_RUNNER_REQUEST_ID"
FUNCTION_ARN = "POST_RUNNER_FUNCTION_ARN"
OUTCOME = "POST_RUNNER_OUTCOME"
EVENT_FILE = "POST_RUNNER_EVENT_FILE"
RESULT_FILE = "POST_RUNNER_RESULT_FILE"
DEADLINE_MS = "POST_RUNNER_DEADLINE_MS"


class PostRunner(Hooks):
    """Hooks that run ``config.command`` after each invocation whose outcome is in its modes.

    The command of an invocation runs on a thread of its own (:meth:`_run`), started by
    ``on_result`` once upstream has accepted the result; the runtime's next ``next`` waits in
    ``before_next`` for the commands running before it is forwarded.  Invocations are kept by
    request id and every piece of shared state is under one lock, so a runtime with several
    workers (parallel ``next`` calls) gets each command its own invocation's context.
    """

    def __init__(self, config: PostRunConfig, environ: Mapping[str, str]) -> None:
        self._config = config
        self._environ = environ
        #: Only the outcomes the command runs after (see ``Hooks.results``).
        self.results = frozenset(
            CallKind.RESPONSE if outcome is Outcome.RESPONSE else CallKind.ERROR
            for outcome in config.modes
        )
        self._lock = threading.Lock()
        # All under _lock:
        self._threads: set[threading.Thread] = set()  # commands' threads, until they end
        self._commands: set[Command] = set()  # the commands running now
        self._closed = False

    # hooks ------------------------------------------------------------------------------------
    # Observers only (Hooks.before_next, Hooks.on_result): the proxy then passes every
    # invocation's two calls through its fast lane (lambdakit.proxy.relay).
    result_limit = MAX_RECORDED

    def before_next(self) -> None:
        if self._threads:  # commands started by earlier results, not yet finished
            with self._lock:
                threads = list(self._threads)
            logger.debug("holding the runtime's next until the command finishes")
            for thread in threads:
                thread.join()
        if self._closed:
            raise HungUp("the post-runner is stopping")  # the runtime is gone anyway

    def on_result(self, result: Result) -> None:
        outcome = Outcome.RESPONSE if result.kind is CallKind.RESPONSE else Outcome.ERROR
        if outcome not in self._config.modes:
            return
        thread = threading.Thread(
            target=self._run,
            args=(result.invocation(), outcome, result.body),
            name=f"post-runner {result.request_id}",
            daemon=True,
        )
        with self._lock:
            if self._closed:
                return
            self._threads.add(thread)
            thread.start()  # under the lock: close() never sees a thread it cannot join

    def close(self) -> None:
        """The runtime exited: stop the commands still running (SIGTERM, grace, SIGKILL, reap)."""
        with self._lock:
            self._closed = True
            commands, threads = list(self._commands), list(self._threads)
        for command in commands:
            command.stop("because the runtime exited")
        for thread in threads:
            thread.join()

    # internals --------------------------------------------------------------------------------
    def _run(self, invocation: ProxiedInvocation, outcome: Outcome, result: bytes) -> None:
        try:
            self._run_command(invocation, outcome, result)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _run_command(self, invocation: ProxiedInvocation, outcome: Outcome, result: bytes) -> None:
        request_id = invocation.request_id
        limit, reason = self._limit(invocation)
        if limit <= 0:
            logger.warning("command not run for %s: too close to the deadline", request_id)
            return
        directory = Path(tempfile.mkdtemp(prefix="post-runner-"))
        try:
            event_file, result_file = directory / "event", directory / "result"
            event_file.write_bytes(invocation.event)
            result_file.write_bytes(result)
            env = {
                **self._environ,
                REQUEST_ID: request_id,
                FUNCTION_ARN: invocation.function_arn,
                OUTCOME: outcome.value,
                EVENT_FILE: str(event_file),
                RESULT_FILE: str(result_file),
                DEADLINE_MS: str(invocation.deadline_ms),
            }
            logger.debug("running the command for %s (%s)", request_id, outcome.value)
            with self._lock:
                if self._closed:
                    return
                try:
                    command = Command(self._config.shell, self._config.command, env, limit, reason)
                except OSError as exc:
                    logger.warning("command for %s could not start: %s", request_id, exc)
                    return
                self._commands.add(command)
            try:
                done = command.wait()
            finally:
                with self._lock:
                    self._commands.discard(command)
            level = logging.INFO if done.returncode == 0 else logging.WARNING
            logger.log(level, "command for %s %s", request_id, done.describe())
        except Exception:
            logger.exception("command for %s failed", request_id)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _limit(self, invocation: ProxiedInvocation) -> tuple[float, str]:
        """Seconds the command may run, and what the limit is (for the log)."""
        limit = self._config.timeout if self._config.timeout is not None else math.inf
        reason = f"at its timeout of {limit:g} s"
        if invocation.deadline_ms:
            remaining = invocation.deadline_ms / 1000 - time.time() - DEADLINE_MARGIN - GRACE
            if remaining < limit:
                limit, reason = remaining, "at its function's deadline"
        return limit, reason
