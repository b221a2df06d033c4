"""Running the post-runner's command: in its own process group, bounded, always reaped.

The command runs as ``SHELL -c COMMAND`` (so ``sleep 2 && echo done`` works, as in the original)
with stdin closed and stdout/stderr inherited, so its output lands in the function's log stream
as written.  It leads a new process group, so that stopping it stops everything it started: at
its time limit, or when the post-runner shuts down, the group gets SIGTERM, then SIGKILL after
:data:`GRACE` seconds, and the shell is always awaited (trio's ``_subprocess.py`` pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger("lambdakit.postrun")

#: Seconds between SIGTERM and SIGKILL when the command is stopped.
GRACE = 0.3


@dataclass(frozen=True, slots=True)
class CommandResult:
    #: The shell's exit status (negative: killed by that signal); None if it never started.
    returncode: int | None
    #: Seconds from spawn to reap.
    duration: float
    #: Why we stopped it ("timeout", or "" when it ended on its own).
    stopped: str = ""
    #: Why it could not start.
    error: str = ""

    def describe(self) -> str:
        if self.returncode is None:
            return f"could not start: {self.error}"
        how = (
            f"was killed by signal {-self.returncode}"
            if self.returncode < 0
            else f"exited with status {self.returncode}"
        )
        why = f", stopped at its {self.stopped}" if self.stopped else ""
        return f"{how} after {self.duration:.3f} s{why}"


async def run_command(
    shell: str,
    command: str,
    env: Mapping[str, str],
    limit: float = math.inf,
    reason: str = "timeout",
) -> CommandResult:
    """Run ``shell -c command``; stop it after ``limit`` seconds (``reason`` says why)."""
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            shell,
            "-c",
            command,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(None, time.monotonic() - started, error=exc.strerror or str(exc))
    stopped = ""
    try:
        timeout = None if math.isinf(limit) else max(limit, 0.0)
        code = await asyncio.wait_for(asyncio.shield(process.wait()), timeout)
    except asyncio.TimeoutError:
        stopped = reason
        code = await stop(process)
    except BaseException:
        await asyncio.shield(stop(process))
        raise
    return CommandResult(code, time.monotonic() - started, stopped)


async def stop(process: asyncio.subprocess.Process, grace: float = GRACE) -> int:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap the leader."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
    _signal_group(process.pid, signal.SIGKILL)  # stragglers too, if the shell already exited
    return await process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
