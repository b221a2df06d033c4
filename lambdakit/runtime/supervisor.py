"""N worker processes forked from an initialised runtime, supervised (Managed Instances mode).

Theory of operation.  Lambda Managed Instances runs Python functions one process per concurrent
request (https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-python-runtime.html).
awslambdaric forks its N workers first and each imports the handler itself; here the parent has
already imported it (the function's Init ran once), so each worker starts warm and shares the
parent's memory copy-on-write.  The parent serves nothing; it only supervises:

- it blocks SIGCHLD, SIGTERM and SIGINT and waits for them with ``sigtimedwait``, so no signal
  can arrive between a ``fork`` and the bookkeeping of its pid (and nothing runs in a handler);
- a worker that exits is reaped and started again in its slot: at once the first time, then
  after a backoff that doubles (0.1 s up to 5 s) while the slot's workers keep dying within
  ``STABLE_S`` of starting, so a crash loop does not spin;
- SIGTERM (Lambda's shutdown signal) or SIGINT stops the workers politely (SIGTERM: their
  ``on_shutdown`` hooks run), then firmly (SIGKILL) after ``STOP_GRACE_S``, reaps every one, and
  ends the parent as the signal's default action would;
- each worker asks the kernel for SIGKILL when the parent dies (``PR_SET_PDEATHSIG``), so even a
  killed parent leaves no orphan serving invocations.

A worker restores the parent's own signal handlers and mask before running its loop.  The
parent runs no ``on_shutdown`` hook: it serves no invocation (the workers run theirs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_LOGGER = "lambdakit.runtime.supervisor"
#: How long stopped workers get between SIGTERM and SIGKILL.
STOP_GRACE_S = 1.0
#: A worker that lived this long was not crash-looping: its slot's backoff starts over.
STABLE_S = 10.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
#: The longest the parent sleeps without looking at its children.
_POLL_S = 1.0
_SIGNALS = frozenset({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})


def _log() -> logging.Logger:
    return logging.getLogger(_LOGGER)


class _Slot:
    """One of the N places a worker runs in, and its restart history."""

    __slots__ = ("backoff", "index", "pid", "respawn_at", "started")

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid: int | None = None
        self.started = 0.0
        self.backoff = 0.0
        self.respawn_at: float | None = None


class Supervisor:
    """Run ``serve(slot)`` in ``count`` forked workers until SIGTERM or SIGINT.

    ``serve`` runs in the child and returns its exit status (an exception is logged: status 1).
    """

    def __init__(self, count: int, serve: Callable[[int], int]) -> None:
        self._serve = serve
        self._slots = [_Slot(index) for index in range(count)]
        self._by_pid: dict[int, _Slot] = {}
        self._parent_mask: set[int] = set()
        self._parent_handlers: dict[int, object] = {}

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT, stop the workers, then end as that signal would."""
        for signum in _SIGNALS:
            self._parent_handlers[signum] = signal.getsignal(signum)
        # A handler of its own keeps SIGCHLD from being discarded on any kernel.
        signal.signal(signal.SIGCHLD, _ignore)
        self._parent_mask = set(signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS))
        try:
            for slot in self._slots:
                self._spawn(slot)
            stop = self._supervise()
            self._stop_all()
        finally:
            self._kill_all()  # those still running after the grace period; every one is reaped
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._parent_mask)
        return _end_as(stop)

    # --- the parent -------------------------------------------------------------------------

    def _supervise(self) -> int:
        """Wait for signals, reap and respawn; returns the signal that asks us to stop."""
        while True:
            now = time.monotonic()
            due = [s.respawn_at for s in self._slots if s.respawn_at is not None]
            timeout = min([_POLL_S, *(max(at - now, 0.0) for at in due)])
            info = signal.sigtimedwait(_SIGNALS, timeout)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                return info.si_signo
            self._reap()
            now = time.monotonic()
            for slot in self._slots:
                if slot.respawn_at is not None and slot.respawn_at <= now:
                    self._spawn(slot)

    def _reap(self) -> list[_Slot]:
        """Collect every exited worker; schedule each slot's next worker."""
        freed = []
        while self._by_pid:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = self._by_pid.pop(pid, None)
            if slot is None:
                continue  # not a worker (the handler's module started it)
            slot.pid = None
            freed.append(slot)
            lived = time.monotonic() - slot.started
            if lived >= STABLE_S:
                slot.backoff = 0.0
            delay = slot.backoff
            slot.backoff = min(max(slot.backoff * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)
            slot.respawn_at = time.monotonic() + delay
            _log().warning(
                "worker %d (pid %d) %s after %.1f s; starting another in %.1f s",
                slot.index,
                pid,
                _describe(status),
                lived,
                delay,
            )
        return freed

    def _spawn(self, slot: _Slot) -> None:
        slot.respawn_at = None
        pid = os.fork()  # signals are blocked: nothing runs between here and the bookkeeping
        if pid == 0:
            os._exit(self._child(slot.index))
        slot.pid = pid
        slot.started = time.monotonic()
        self._by_pid[pid] = slot

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait up to the grace period, then SIGKILL the rest."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self._by_pid:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            signal.sigtimedwait({signal.SIGCHLD}, min(remaining, 0.05))
            self._reap_quietly()

    def _kill_all(self) -> None:
        self._signal_all(signal.SIGKILL)
        for pid in list(self._by_pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._by_pid.pop(pid, None)

    def _signal_all(self, signum: int) -> None:
        for pid in self._by_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap_quietly(self) -> None:
        while self._by_pid:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._by_pid.pop(pid, None)

    # --- a worker ---------------------------------------------------------------------------

    def _child(self, index: int) -> int:
        """In the forked worker: become a plain runtime process, then serve."""
        try:
            parent = os.getppid()
            from lambdakit.deathsig import die_with_parent

            die_with_parent()
            if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
                return 1
            for signum, handler in self._parent_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            signal.pthread_sigmask(signal.SIG_SETMASK, self._parent_mask)
            self._by_pid.clear()
            return self._serve(index)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            _log().exception("worker %d stopped", index)
            return 1


def _ignore(signum: int, frame: object) -> None:
    """SIGCHLD's handler in the parent (never run: the signal is blocked and waited for)."""


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _end_as(signum: int) -> int:
    """End the process as ``signum``'s default action would.

    The workers have run their ``on_shutdown`` hooks; the parent served no invocation and runs
    none (its own handlers, inherited from the handler's module, are not called).
    """
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum
