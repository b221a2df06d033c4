"""Running the post-runner's command: in its own process group, bounded, always reaped.

The command runs as ``SHELL -c COMMAND`` (so ``sleep 2 && echo done`` works, as in the original)
with stdin closed and stdout/stderr inherited, so its output lands in the function's log stream
as written.  It leads a new process group, so that stopping it stops everything it started: at
its time limit, or when the post-runner shuts down, the group gets SIGTERM, then SIGKILL after
:data:`GRACE` seconds, and the shell is always waited for (trio's ``_subprocess.py`` pattern).

:meth:`Command.wait` blocks in ``waitpid`` (so the exit is seen at once, with no polling) while a
timer thread enforces the limit; :meth:`Command.stop` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lambdakit.deathsig import die_with_parent

#: Seconds between SIGTERM and SIGKILL when the command is stopped.
GRACE = 0.3


@dataclass(frozen=True, slots=True)
class CommandResult:
    #: The shell's exit status (negative: killed by that signal).
    returncode: int
    #: Seconds from spawn to reap.
    duration: float
    #: Why we stopped it ("at its timeout of 1 s"), or "" when it ended on its own.
    stopped: str = ""

    def describe(self) -> str:
        how = (
            f"was killed by signal {-self.returncode}"
            if self.returncode < 0
            else f"exited with status {self.returncode}"
        )
        why = f", stopped {self.stopped}" if self.stopped else ""
        return f"{how} after {self.duration:.3f} s{why}"


class Command:
    """One run of ``shell -c command``, started at once (OSError if it cannot start)."""

    def __init__(
        self,
        shell: str,
        command: str,
        env: Mapping[str, str],
        limit: float = math.inf,
        reason: str = "at its timeout",
    ) -> None:
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            [shell, "-c", command],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Not outliving a post-runner killed with SIGKILL.  preexec_fn with threads running:
            # die_with_parent only makes one prctl call between fork and exec (no locks taken).
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        self._limit = limit
        self._reason = reason
        self._lock = threading.Lock()
        self._stopped = ""
        self._reaped = threading.Event()

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait(self) -> CommandResult:
        """Wait for the command to exit, stopping it at its limit; reap it (one caller only)."""
        timer = None
        if not math.isinf(self._limit):
            timer = threading.Timer(max(self._limit, 0.0), self.stop, (self._reason,))
            timer.daemon = True
            timer.start()
        try:
            code = self._process.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self._reaped.set()
        if self._stopped:
            _signal_group(self._process.pid, signal.SIGKILL)  # what it started, if still there
        return CommandResult(code, time.monotonic() - self._started, self._stopped)

    def stop(self, reason: str, grace: float = GRACE) -> None:
        """SIGTERM the process group, and SIGKILL it ``grace`` seconds later unless it is gone."""
        with self._lock:
            if self._stopped or self._reaped.is_set():
                return
            self._stopped = reason
        _signal_group(self._process.pid, signal.SIGTERM)
        if not self._reaped.wait(grace):
            _signal_group(self._process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
