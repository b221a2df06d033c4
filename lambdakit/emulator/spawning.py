"""Starting an environment's processes without stopping the event loop.

Theory of operation
-------------------
A process is started with ``fork`` and ``exec``, and whoever forks waits until the child has
exec'd (or failed to), to raise the error in the parent.  Each environment's processes need
Python run in the child between the two (``preexec``: the parent-death signal,
:mod:`lambdakit.deathsig`, and joining the environment's cgroup), which rules out ``vfork`` and
``posix_spawn``: the child is a full copy of serve, and until its ``exec`` every page it touches
is copied.  Started from the event loop (``loop.subprocess_exec``: libuv forks, always), that
wait blocked the loop: 2.5-7.5 ms per process in a test with a heap like serve's, 6-18 ms seen
with ``strace`` in serve under load, and as long as the child takes to reach ``exec`` on a busy
machine.  Every invocation in flight stalled whenever an environment started.

So the fork happens on one thread kept for it (:func:`spawn`): the loop waits for its future
and goes on serving.  Only the ``fork`` itself (and ``subprocess``'s Python around it) holds
the GIL; the wait for ``exec`` does not.  In the same test the loop's longest pauses went to
about 1.5 ms per process, and a child that takes a second to reach ``exec`` no longer stops the
loop at all (``tests/emulator/test_spawning.py``).
The parent-death signal is the *thread's* (``PR_SET_PDEATHSIG`` fires when the thread that
forked exits), so that thread lives as long as the process: a ``lambdakit serve`` killed with
SIGKILL still takes its runtimes with it.  The child's exit is watched on the loop through a
pidfd (Linux 5.3 and later), and it is reaped there.  Where there is no pidfd (macOS, older
kernels), :func:`spawn` falls back to the loop's own ``subprocess_exec``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

#: The thread that forks every process (started on first use; it lives as long as the process).
_forker: concurrent.futures.ThreadPoolExecutor | None = None


class Child(Protocol):
    """A process we started: its exit status once it has exited, and its reaping."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (negative: killed by that signal), else None."""
        ...

    #: Resolves with the exit status when the process has exited and been reaped.
    exited: asyncio.Future[int]

    def release(self) -> None:
        """Let go of what watches the process (after it exited)."""
        ...


class _WatchedChild:
    """A child forked on the spawning thread, its exit seen through a pidfd on the loop."""

    def __init__(self, process: subprocess.Popen[Any], pidfd: int) -> None:
        self._process = process
        self._pidfd = pidfd
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._check)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def _check(self) -> None:
        code = self._process.poll()  # waitpid(WNOHANG): reaps it
        if code is None:
            return
        self.release()
        if not self.exited.done():
            self.exited.set_result(code)

    def release(self) -> None:
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1


class _ExitProtocol(asyncio.SubprocessProtocol):
    """Notices the exit of a child the loop started (the fallback)."""

    def __init__(self) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)  # uvloop: no subclass

    def process_exited(self) -> None:
        assert self.transport is not None
        code = self.transport.get_returncode()
        if not self.exited.done():
            self.exited.set_result(-1 if code is None else code)


class _LoopChild:
    """A child the loop started with ``subprocess_exec`` (where there is no pidfd)."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _ExitProtocol) -> None:
        self._transport = transport
        self.exited = protocol.exited

    @property
    def pid(self) -> int:
        return self._transport.get_pid()

    @property
    def returncode(self) -> int | None:
        return self._transport.get_returncode()

    def release(self) -> None:
        self._transport.close()


async def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    output_fd: int,
    preexec: Callable[[], None],
) -> Child:
    """Start ``command`` as the leader of a new session, stdout and stderr on ``output_fd``.

    Raises ``OSError`` (``FileNotFoundError``, ``PermissionError``, ...) if it cannot be
    exec'd, and ``subprocess.SubprocessError`` if ``preexec`` failed.
    """
    loop = asyncio.get_running_loop()
    options = _options(env, cwd, output_fd, preexec)
    if not _has_pidfd():  # the loop forks, and waits for the exec
        transport, protocol = await loop.subprocess_exec(_ExitProtocol, *command, **options)
        return _LoopChild(transport, protocol)
    forked = loop.run_in_executor(
        _forking_thread(), functools.partial(subprocess.Popen, list(command), **options)
    )
    try:
        process = await asyncio.shield(forked)
    except asyncio.CancelledError:
        # The fork goes on, on its thread: wait for it (a few ms; through further cancellations
        # too), so that the caller may close ``output_fd``, then stop whatever it started.
        while not forked.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(forked)
        if not forked.cancelled() and forked.exception() is None:
            _discard(forked.result())
        raise
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:  # the probe worked, so: out of file descriptors
        _discard(process)
        raise
    return _WatchedChild(process, pidfd)


def _discard(process: subprocess.Popen[Any]) -> None:
    """Kill the group of a process nobody will watch, and reap it (on the forking thread)."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    _forking_thread().submit(process.wait)


_pidfd: bool | None = None


def _has_pidfd() -> bool:
    """Whether this system has pidfds (Linux 5.3 and later, Python 3.9 and later)."""
    global _pidfd
    if _pidfd is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd = True
        except (AttributeError, OSError):
            _pidfd = False
    return _pidfd


def _options(
    env: Mapping[str, str], cwd: str, output_fd: int, preexec: Callable[[], None]
) -> dict[str, Any]:
    """How every process starts, whoever forks it."""
    return {
        "stdin": subprocess.DEVNULL,
        "stdout": output_fd,
        "stderr": output_fd,
        "env": dict(env),
        "cwd": cwd,
        "start_new_session": True,
        # Safe although serve has threads: the preexec functions it passes make a system call
        # or two (prctl, a write to cgroup.procs) and take no lock another thread may hold.
        "preexec_fn": preexec,
    }


def _forking_thread() -> concurrent.futures.ThreadPoolExecutor:
    global _forker
    if _forker is None:
        _forker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lambdakit-fork")
    return _forker
