"""Child processes for the benchmarks: started, drained, measured, and always stopped and reaped."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from lambdakit.deathsig import terminated_with_parent

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
LOG_TAIL_LINES = 400


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process itself (all its threads, no children)."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (every thread)."""
    times = os.times()
    return times.user + times.system


def reaped_children_cpu_seconds() -> float:
    """User + system CPU time of this process's children that have been waited for."""
    times = os.times()
    return times.children_user + times.children_system


def cmdline(pid: int) -> list[str]:
    """The argv of a process, or [] if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")[:-1]]


def thread_count(pid: int) -> int:
    """Threads of the process (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt once; later ones are ignored so cleanup finishes.

    SIGINT is set explicitly: a shell starts background jobs with it ignored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def rss_mb(pid: int) -> float:
    """VmRSS of the process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise ProcessLookupError(pid)


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of ``pid``."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children[int(fields[1])].append(int(entry))
    found: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            start = _start_time(child)
            if start is not None:
                found.append((child, start))
                todo.append(child)
    return found


class Managed:
    """A child process whose merged stdout/stderr a reader thread drains into a bounded tail."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._lines_seen = 0
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            # SIGTERM if this thread ends before stop(): a benchmark killed outright (SIGKILL,
            # which interrupt_on_signals cannot catch) leaves nothing running, as the tests'
            # running_serve does.
            preexec_fn=terminated_with_parent,  # noqa: PLW1509 (one prctl call, no lock taken)
        )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._drain, name=f"drain-{name}", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._tail.append(line)
                self._lines_seen += 1
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def lines_seen(self) -> int:
        return self._lines_seen

    def tail(self, n: int = 40) -> list[str]:
        with self._cond:
            return list(self._tail)[-n:]

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait for a line matching ``pattern``; raise if the process exits or time is up."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                lines = list(self._tail)
                fresh = min(len(lines), self._lines_seen - checked)
                for line in lines[len(lines) - fresh :]:
                    if match := regex.search(line):
                        return match
                checked = self._lines_seen
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}) {self._brief()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no line matching {pattern!r} {self._brief()}")
                self._cond.wait(min(left, 0.2))

    def _brief(self) -> str:
        return "; last output:\n  " + "\n  ".join(list(self._tail)[-15:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, a grace period, SIGKILL; reap; then kill any descendant left behind."""
        family = descendants(self.pid) if self.alive() else []
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(grace)
        else:
            self._signal_group(signal.SIGKILL)  # orphans left in its group
        left = [(pid, start) for pid, start in family if _start_time(pid) == start]
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def kill(self, grace: float = 5.0) -> int | None:
        """SIGKILL the process group at once (no grace: for throwaway processes); reap; drain."""
        family = descendants(self.pid) if self.alive() else []
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state): move on
            self.proc.wait(grace)
        for pid, start in family:
            if _start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(grace)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        return self.proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def wait_for_port(port: int, proc: Managed, timeout: float) -> None:
    """Wait until 127.0.0.1:port accepts a connection (or the process exits, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode}) {proc.tail(15)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{proc.name}: port {port} not accepting after {timeout:.0f} s")
