"""Processes of an execution environment: spawned in a process group we own, always reaped.

Each environment's runtime is started with ``start_new_session=True`` so that it leads a new
process group; everything it starts (curl children of a bash runtime, a post-runner's command)
stays in that group unless it leaves on purpose.  Stopping follows trio's ``_subprocess.py``:
SIGTERM to the group, a grace period, SIGKILL to the group, and the leader is always awaited.
Signals go to the whole group, so no child is left behind when the leader dies first.  A
process that leaves the group on purpose (``setsid``) is still in the environment's cgroup,
which the end of the Shutdown phase sweeps (:mod:`lambdakit.emulator.containment`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from lambdakit.deathsig import die_with_parent
from lambdakit.emulator import spawning
from lambdakit.emulator.proc_table import process_table
from lambdakit.emulator.spawning import Child

logger = logging.getLogger("lambdakit.processes")

#: How often the list of a group's processes is refreshed for memory accounting, seconds.
_MEMBER_SCAN_INTERVAL = 5.0
#: How often their peak memory is read again; REPORT lines in between reuse the last reading.
_RSS_READ_INTERVAL = 1.0
#: Output: bytes per read, reads per event-loop wakeup, and the longest line (CloudWatch's).
_READ_SIZE = 65536
_READS_PER_WAKEUP = 16
MAX_LINE = 256 * 1024


class OutputPipe:
    """The read end of the pipe a group writes its stdout and stderr to, split into lines.

    We own the pipe (rather than asyncio's subprocess pipes) so that :meth:`drain` can read
    whatever is already written, synchronously: a line printed just before the runtime asks for
    the next event must come before that invocation's END and REPORT.
    """

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_line = on_line
        self._partial = bytearray()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        #: Tells whether the pipe holds anything: a synchronous drain (on every invocation's
        #: path) then costs one poll, not a read failing with EAGAIN and its exception.
        self._readable = select.poll()
        self._readable.register(self.read_fd, select.POLLIN)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(self.read_fd, self.drain, _READS_PER_WAKEUP)

    def child_started(self) -> None:
        """The child has its copy of the write end; ours must go so that EOF can come."""
        with contextlib.suppress(OSError):
            os.close(self.write_fd)

    def drain(self, reads: int | None = None) -> None:
        """Read and deliver what was written so far (at most ``reads`` reads); close on EOF.

        From the event loop a wakeup reads a bounded amount, so a process writing without pause
        cannot starve the service; :meth:`drain` without a bound empties the pipe.
        """
        while not self.closed.done() and (reads is None or reads > 0):
            if reads is not None:
                reads -= 1
            try:
                data = os.read(self.read_fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close()
                return
            self._split(data)

    def drain_written(self, reads: int) -> None:
        """:meth:`drain` (at most ``reads`` reads) if the pipe holds anything or was closed."""
        if self._readable.poll(0):
            self.drain(reads)

    def _split(self, data: bytes) -> None:
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            self._partial += data[start:end]
            self._emit()
            start = end + 1
            end = data.find(b"\n", start)
        self._partial += data[start:]
        while len(self._partial) >= MAX_LINE:  # one line at most 256 KB, as CloudWatch cuts
            rest = self._partial[MAX_LINE:]
            del self._partial[MAX_LINE:]
            self._emit()
            self._partial = rest

    def _emit(self) -> None:
        line = bytes(self._partial).rstrip(b"\r")
        self._partial.clear()
        self._on_line(line.decode("utf-8", "replace"))

    def _close(self) -> None:
        if self._partial:
            self._emit()
        self._loop.remove_reader(self.read_fd)
        os.close(self.read_fd)
        self.closed.set_result(None)

    def abandon(self) -> None:
        """Spawning failed: close both ends."""
        self.child_started()
        if not self.closed.done():
            self._close()


class ProcessGroup:
    """A process group led by one child we spawned."""

    def __init__(self, child: Child, output: OutputPipe) -> None:
        self._child = child
        self._output = output
        self.pid: int = child.pid
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
        preexec: Callable[[], None] = die_with_parent,
    ) -> ProcessGroup:
        """Start ``command`` as the leader of a new process group; raise ``OSError`` if it can't.

        The event loop goes on while the process is forked (:mod:`lambdakit.emulator.spawning`).
        """
        output = OutputPipe(on_line)
        try:
            child = await spawning.spawn(
                command, env=env, cwd=cwd, output_fd=output.write_fd, preexec=preexec
            )
        except subprocess.SubprocessError as exc:  # preexec failed (joining the cgroup)
            output.abandon()
            raise OSError(f"cannot prepare its process: {exc}") from exc
        except BaseException:
            output.abandon()
            raise
        output.child_started()
        return cls(child, output)

    def drain_output(self) -> None:
        """Deliver the lines the group has written so far (up to a few MB)."""
        self._output.drain_written(4 * _READS_PER_WAKEUP)

    @property
    def exit_status(self) -> int | None:
        return self._child.returncode

    def exited(self) -> asyncio.Future[int]:
        """Resolves with the leader's exit status (negative: killed by a signal)."""
        return self._child.exited

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the group (silently if none is left)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, wait up to ``grace`` seconds, SIGKILL it, and reap the leader."""
        exited = self._child.exited
        if grace > 0 and not exited.done():
            self.signal(signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), grace)
        # Kill whatever is left of the group, the leader or children that outlived it.
        self.signal(signal.SIGKILL)
        code = await asyncio.shield(exited)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._output.closed), 1.0)
        if not self._output.closed.done():
            self._output.abandon()  # a grandchild kept the pipe open: stop reading it
        self._child.release()
        return code

    def max_rss_mb(self) -> int:
        """Peak resident memory of the group's processes (sum of each one's VmHWM), in MB.

        Never decreases: it is the most the environment has used since it started.  Read from
        ``/proc`` at most once a second (it is on every invocation's path).
        """
        now = time.monotonic()
        if now - self._rss_read > _RSS_READ_INTERVAL:
            self._rss_read = now
            members = _GROUPS.members(self.pid, now)
            total_kb = sum(_peak_rss_kb(pid) for pid in members)
            self._max_rss_kb = max(self._max_rss_kb, total_kb)
        return max(1, round(self._max_rss_kb / 1024))

    def __repr__(self) -> str:
        code = self._child.returncode
        if code is None:
            return f"<ProcessGroup running with PID {self.pid}>"
        if code < 0:
            return f"<ProcessGroup PID {self.pid} exited with signal {-code}>"
        return f"<ProcessGroup PID {self.pid} exited with status {code}>"


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


class _ProcessGroups:
    """Every process group on the machine, read from ``/proc`` once for all environments.

    A group's members are found only by reading every process's ``/proc/PID/stat``
    (:func:`~lambdakit.emulator.proc_table.process_table`), on the event loop.  Read once per
    environment (as before), that was a few milliseconds every few seconds per environment,
    during which nothing else was served; one table serves them all.  A group not in the table
    (an environment that just started) has it read again, at most once a second.
    """

    def __init__(self) -> None:
        self._groups: dict[int, list[int]] = {}
        self._read_at = float("-inf")

    def members(self, pgid: int, now: float) -> list[int]:
        """The processes in group ``pgid`` (Linux ``/proc``; just the leader elsewhere)."""
        age = now - self._read_at
        if age > _MEMBER_SCAN_INTERVAL or (pgid not in self._groups and age > _RSS_READ_INTERVAL):
            self._groups = _read_groups()
            self._read_at = now
        return self._groups.get(pgid) or [pgid]


def _read_groups() -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for pid, _, pgid in process_table():
        groups.setdefault(pgid, []).append(pid)
    return groups


_GROUPS = _ProcessGroups()
