"""cgroup v2 directories that hold every process of an environment, however it detaches.

Theory of operation
-------------------
A process that calls ``setsid()`` (``setsid sleep 300 &``, a double-forking daemon) leaves its
process group, so signalling the group no longer reaches it.  It cannot leave its cgroup: a
child is born in its parent's cgroup, and only a process with write access to
``cgroup.procs`` moves it (https://docs.kernel.org/admin-guide/cgroup-v2.html).  So each
``lambdakit serve`` makes one cgroup of its own under a ``lambdakit`` parent, and one below it
per environment::

    <cgroup2 mount>/lambdakit/serve-<pid>-<start time>/<environment>

Each process an environment spawns writes itself into the environment's ``cgroup.procs``
before it runs the runtime's or the extension's executable (:func:`join`, run as a
``preexec_fn``): there is no moment at which it, or anything it starts, is outside.  The
environment's Shutdown phase ends by killing what is left (``cgroup.kill``, Linux 5.14, else
SIGKILL to each member until none is left), waiting until ``cgroup.events`` says the cgroup is
empty, and removing it.

The directory of a ``serve`` names its pid and start time (``/proc/<pid>/stat`` field 22), so a
later ``serve`` tells a leftover of one that was SIGKILLed (no such process any more) from a
``serve`` that still runs, and sweeps only the former (:meth:`CgroupTree.sweep_stale`).

No controller is enabled: only the core files (``cgroup.procs``, ``cgroup.kill``,
``cgroup.events``) are used, so the "no internal processes" rule never applies and the tree
works under any parent that lets us create directories and move processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger("lambdakit.cgroups")

#: The directory under the cgroup2 mount (or under serve's own cgroup) that holds every serve's.
PARENT = "lambdakit"
_SERVE_DIR = re.compile(r"serve-(\d+)-(\d+)")
#: How often an emptying cgroup is looked at, and how long it may take to empty.
_POLL = 0.005
_EMPTY_TIMEOUT = 5.0


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or ``.../unified``)."""
    try:
        with open(mountinfo) as lines:
            for line in lines:
                before, _, after = line.partition(" - ")
                if after.split(" ", 1)[0] == "cgroup2":
                    return Path(before.split()[4])
    except OSError:
        pass
    return None


def own_cgroup(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """This process's cgroup v2 path (``/`` or ``/user.slice/...``), from its ``0::`` line."""
    try:
        with open(proc_cgroup) as lines:
            for line in lines:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (with the pid: who it is), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def join(procs: bytes) -> None:
    """In a child before exec: move into the cgroup whose ``cgroup.procs`` is ``procs``.

    Only ``os`` calls (no allocation-heavy Python): this runs between fork and exec.  Raises
    ``OSError`` if the move fails, which fails the spawn: a process we could not contain is not
    started.
    """
    fd = os.open(procs, os.O_WRONLY)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


class Cgroup:
    """One cgroup directory: its members, a kill of all of them, its removal."""

    __slots__ = ("id", "path", "procs")

    def __init__(self, path: Path) -> None:
        self.path = path
        #: ``cgroup.procs`` as bytes, for :func:`join` between fork and exec.
        self.procs = os.fsencode(path / "cgroup.procs")
        #: The cgroup's id: its directory's inode, as sockets report it (``INET_DIAG_CGROUP_ID``).
        self.id = os.stat(path).st_ino

    def pids(self) -> list[int]:
        """The processes in it now (none once it is removed)."""
        try:
            with open(self.procs, "rb") as procs:
                return [int(line) for line in procs.read().split()]
        except (OSError, ValueError):
            return []

    def populated(self) -> bool:
        """Whether any process is in it (``cgroup.events``' ``populated``)."""
        try:
            with open(self.path / "cgroup.events", "rb") as events:
                for line in events:
                    if line.startswith(b"populated "):
                        return line.split()[1] != b"0"
        except OSError:
            return False
        return bool(self.pids())

    def freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) every process in it, those that left their process group too
        (``cgroup.freeze``, Linux 5.2); False if the kernel cannot."""
        try:
            with open(self.path / "cgroup.freeze", "wb", buffering=0) as freeze:
                freeze.write(b"1" if frozen else b"0")
        except OSError as exc:
            logger.debug("cgroup.freeze of %s failed (%s)", self.path, exc)
            return False
        return True

    def kill(self) -> list[int]:
        """SIGKILL every process in it (and in cgroups below it); returns those it held."""
        members = self.pids()
        try:
            with open(self.path / "cgroup.kill", "wb") as kill:
                kill.write(b"1")
            return members
        except FileNotFoundError:  # before Linux 5.14: one by one (a fork may race: repeat)
            pass
        except OSError as exc:
            logger.debug("cgroup.kill of %s failed (%s); killing one by one", self.path, exc)
        for _ in range(100):
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            members = self.pids()
        return members

    async def wait_empty(self, timeout: float = _EMPTY_TIMEOUT) -> bool:
        """Wait until no process is left in it; False if some still are after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.populated():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(_POLL)
        return True

    def remove(self) -> bool:
        """Remove the directory (and empty ones below it); False if it is still in use."""
        with contextlib.suppress(OSError):
            for child in sorted(self.path.iterdir(), reverse=True):
                if child.is_dir():
                    Cgroup(child).remove()
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            logger.warning("cannot remove cgroup %s: %s", self.path, exc.strerror or exc)
            return False
        return True

    def __repr__(self) -> str:
        return f"<Cgroup {self.path}>"


class CgroupsUnavailable(Exception):
    """No cgroup of ours can hold an environment here; the message says why."""


class CgroupTree:
    """This ``serve``'s cgroup, the parent of one cgroup per environment."""

    def __init__(self, parent: Path, own: Path) -> None:
        self.parent = parent
        self.own = Cgroup(own)
        self._made = 0

    @classmethod
    def open(cls, mount: Path | None = None, own_path: str | None = None) -> CgroupTree:
        """This serve's cgroup, made and tried; raises :class:`CgroupsUnavailable`."""
        mount = mount or cgroup2_mount()
        if mount is None:
            raise CgroupsUnavailable("no cgroup v2 hierarchy is mounted")
        own_path = own_path if own_path is not None else own_cgroup()
        candidates = [mount / PARENT]
        if own_path and own_path != "/":
            candidates.append(mount / own_path.lstrip("/") / PARENT)
        pid = os.getpid()
        name = f"serve-{pid}-{start_time(pid) or 0}"
        reasons = []
        for parent in candidates:
            try:
                parent.mkdir(exist_ok=True)
                (parent / name).mkdir()
            except OSError as exc:
                reasons.append(f"cannot make {parent / name}: {exc.strerror or exc}")
                continue
            tree = cls(parent, parent / name)
            reason = tree._unusable()
            if not reason:
                return tree
            reasons.append(reason)
            tree.own.remove()
        raise CgroupsUnavailable("; ".join(reasons))

    def _unusable(self) -> str:
        """Why a child cannot move itself into a cgroup of ours ("" if it can), tried once."""
        probe_path = self.own.path / "probe"
        try:
            probe_path.mkdir()
            probe = Cgroup(probe_path)
            subprocess.run(
                [sys.executable, "-S", "-c", ""],
                preexec_fn=lambda: join(probe.procs),
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot move a process into {probe_path}: {exc}"
        finally:
            with contextlib.suppress(OSError):
                probe_path.rmdir()
        return ""

    def environment(self, label: str) -> Cgroup:
        """A new, empty cgroup for one environment (``label`` is for people reading the tree)."""
        self._made += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:64]
        path = self.own.path / f"{self._made}-{safe}"
        path.mkdir()
        return Cgroup(path)

    def sweep_stale(self) -> int:
        """Kill and remove what ``serve``s no longer running left; the number of processes."""
        killed = 0
        with contextlib.suppress(OSError):
            for entry in self.parent.iterdir():
                match = _SERVE_DIR.fullmatch(entry.name)
                if match is None or entry == self.own.path:
                    continue
                pid, started = int(match.group(1)), int(match.group(2))
                if start_time(pid) == started:
                    continue  # that serve is running
                killed += _sweep(entry)
        if killed:
            logger.warning(
                "killed %d process(es) left by a lambdakit serve that was killed", killed
            )
        return killed

    def close(self) -> None:
        """The service stopped: kill anything left anywhere in the tree, remove it."""
        _sweep(self.own.path)


def _sweep(path: Path) -> int:
    """Kill every process below ``path``, wait (briefly) until they are gone, remove it all."""
    try:
        cgroup = Cgroup(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            logger.debug("cannot sweep %s: %s", path, exc)
        return 0
    members = _all_pids(path)
    cgroup.kill()
    deadline = time.monotonic() + _EMPTY_TIMEOUT
    while cgroup.populated() and time.monotonic() < deadline:
        time.sleep(_POLL)
    cgroup.remove()
    return len(members)


def _all_pids(path: Path) -> list[int]:
    pids: list[int] = []
    for procs in path.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(line) for line in procs.read_bytes().split())
    return pids
