"""Processes of an execution environment: spawned in a process group we own, always reaped.

Each environment's runtime is started with ``start_new_session=True`` so that it leads a new
process group; everything it starts (curl children of a bash runtime, a post-runner's command)
stays in that group unless it leaves on purpose.  Stopping follows trio's ``_subprocess.py``:
SIGTERM to the group, a grace period, SIGKILL to the group, and the leader is always awaited.
Signals go to the whole group, so no child is left behind when the leader dies first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import cast

logger = logging.getLogger("lambdakit.processes")

#: How often the list of a group's processes is refreshed for memory accounting, seconds.
_MEMBER_SCAN_INTERVAL = 5.0
#: How often their peak memory is read again; REPORT lines in between reuse the last reading.
_RSS_READ_INTERVAL = 1.0


class _OutputProtocol(asyncio.SubprocessProtocol):
    """Splits the group leader's stdout/stderr into lines and notices its exit."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self._on_line = on_line
        self._partial = b""
        self._transport: asyncio.SubprocessTransport | None = None
        #: The leader's exit status (negative: killed by that signal).
        self.exited: asyncio.Future[int] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.SubprocessTransport, transport)  # uvloop: no subclass

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._on_line(line.rstrip(b"\r").decode("utf-8", "replace"))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self._partial:
            self._on_line(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        if not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        if not self.exited.done():
            self.exited.set_result(-1 if code is None else code)


class ProcessGroup:
    """A process group led by one child we spawned."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _OutputProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.pid: int = transport.get_pid()
        self._members: list[int] = [self.pid]
        self._members_scanned = 0.0
        self._max_rss_kb = 0
        self._rss_read = 0.0

    @classmethod
    async def spawn(
        cls,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        on_line: Callable[[str], None],
    ) -> ProcessGroup:
        """Start ``command`` as the leader of a new process group; raise ``OSError`` if it can't."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _OutputProtocol(on_line),
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return cls(transport, protocol)

    @property
    def exit_status(self) -> int | None:
        return self._transport.get_returncode()

    def exited(self) -> asyncio.Future[int]:
        """Resolves with the leader's exit status (negative: killed by a signal)."""
        return self._protocol.exited

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the group (silently if none is left)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, wait up to ``grace`` seconds, SIGKILL it, and reap the leader."""
        exited = self._protocol.exited
        if grace > 0 and not exited.done():
            self.signal(signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), grace)
        # Kill whatever is left of the group, the leader or children that outlived it.
        self.signal(signal.SIGKILL)
        code = await asyncio.shield(exited)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._protocol.output_closed), 1.0)
        self._transport.close()
        return code

    def max_rss_mb(self) -> int:
        """Peak resident memory of the group's processes (sum of each one's VmHWM), in MB.

        Never decreases: it is the most the environment has used since it started.  Read from
        ``/proc`` at most once a second (it is on every invocation's path).
        """
        now = time.monotonic()
        if now - self._rss_read > _RSS_READ_INTERVAL:
            self._rss_read = now
            if now - self._members_scanned > _MEMBER_SCAN_INTERVAL:
                self._members = _group_members(self.pid)
                self._members_scanned = now
            total_kb = sum(_peak_rss_kb(pid) for pid in self._members)
            self._max_rss_kb = max(self._max_rss_kb, total_kb)
        return max(1, round(self._max_rss_kb / 1024))

    def __repr__(self) -> str:
        code = self._transport.get_returncode()
        if code is None:
            return f"<ProcessGroup running with PID {self.pid}>"
        if code < 0:
            return f"<ProcessGroup PID {self.pid} exited with signal {-code}>"
        return f"<ProcessGroup PID {self.pid} exited with status {code}>"


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: be killed if the service dies without stopping us (Linux).

    A service killed with SIGKILL cannot run its shutdown; this keeps its runtimes from living on.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """Lambda's wording for how a runtime ended: ``exit status 1`` or ``signal: killed``."""
    if code >= 0:
        return f"exit status {code}"
    names = {
        signal.SIGKILL: "killed",
        signal.SIGTERM: "terminated",
        signal.SIGSEGV: "segmentation fault",
        signal.SIGABRT: "aborted",
    }
    return f"signal: {names.get(signal.Signals(-code), signal.Signals(-code).name)}"


def _peak_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` (Linux ``/proc``; just the leader elsewhere)."""
    members = [pgid]
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit() or int(entry) == pgid:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry))
    return members
