"""What keeps one environment's processes to themselves: who may call its APIs, what is swept.

Theory of operation
-------------------
On Lambda each execution environment is a microVM: nothing else can reach its Runtime API, and
nothing it starts outlives it (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).
Here every environment is a set of processes of the same user on one machine, so two things are
enforced (docs/isolation.md says what is not):

* **Its processes only.**  Each accepted connection to the environment's port (Runtime,
  Extensions and Telemetry APIs) is traced to the socket at its other end
  (:mod:`lambdakit.emulator.peer`) once, when it is accepted: it is admitted if that socket
  was created in the environment's cgroup, or if one of the environment's processes holds it;
  otherwise it is closed before a byte is read, and the first such refusal is logged.
* **Nothing left behind.**  Every process the environment spawns joins the environment's
  cgroup between fork and exec (:mod:`lambdakit.emulator.cgroups`), so whatever it starts, even
  after ``setsid()``, is in it too; the end of the Shutdown phase (:meth:`Enclosure.sweep`)
  kills what is left there and removes the cgroup.  Each ``serve`` removes, when it starts,
  what a ``serve`` that was SIGKILLed left (:meth:`Containment.open`).

Without a usable cgroup v2 hierarchy (or with ``--no-cgroups``) each environment's processes
get a marker variable, :data:`MARKER`, which whatever they start inherits: the environment's
processes are then its process groups, their descendants and the marked processes (one scan of
``/proc``); a process that execs with a cleared environment (``env -i``) after leaving its
process group escapes that scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping

from lambdakit.deathsig import die_with_parent
from lambdakit.emulator.cgroups import Cgroup, CgroupsUnavailable, CgroupTree, join, start_time
from lambdakit.emulator.peer import SocketDiag, held_by
from lambdakit.emulator.proc_table import pids, process_table

logger = logging.getLogger("lambdakit.containment")

#: Without a cgroup: in the environment of an environment's processes, ``<serve pid>-<serve
#: start time>-<number>``, inherited by all they start (unless one execs with a new environment).
MARKER = "LAMBDAKIT_SANDBOX"
_MARKER_PREFIX = MARKER.encode() + b"="
#: How long killed leftovers may take to be gone (reaped by their parent, often init).
_GONE_TIMEOUT = 2.0


class Containment:
    """The service's side: the cgroup tree (where usable) and the socket lookups."""

    def __init__(self, tree: CgroupTree | None, isolate: bool, marks: bool = True) -> None:
        if isolate and not sys.platform.startswith("linux"):
            logger.info("the Runtime API's peer check needs Linux (sock_diag, /proc): it is off")
            isolate = False
        self.tree = tree
        self.isolate = isolate
        #: Without a cgroup, mark each environment's processes (for finding and sweeping them).
        self._marks = marks
        self._diag = SocketDiag() if isolate else None
        pid = os.getpid()
        self._serve = f"{pid}-{start_time(pid) or 0}"
        self._made = 0

    @classmethod
    def open(cls, isolate: bool, cgroups: bool = True) -> Containment:
        """Make this serve's cgroup where cgroup v2 lets us, and sweep what killed serves left."""
        tree = None
        why = "--no-cgroups"
        if cgroups:
            try:
                tree = CgroupTree.open()
            except CgroupsUnavailable as exc:
                why = str(exc)
        if tree is None:
            logger.info(
                "no cgroup for environments (%s): their processes are their process groups, "
                "their descendants and the processes marked %s (docs/isolation.md)",
                why,
                MARKER,
            )
        else:
            tree.sweep_stale()
        containment = cls(tree, isolate)
        containment.sweep_stale_marked()
        return containment

    def enclosure(self, name: str, roots: Callable[[], Iterable[int]]) -> Enclosure:
        """A new environment's; ``roots`` are the pids it spawned (for when there is no cgroup)."""
        self._made += 1
        cgroup = None
        if self.tree is not None:
            try:
                cgroup = self.tree.environment(name)
            except OSError as exc:
                logger.warning("%s: cannot make its cgroup: %s", name, exc.strerror or exc)
        marker = None if cgroup is not None or not self._marks else f"{self._serve}-{self._made}"
        return Enclosure(name, cgroup, self._diag, roots, marker)

    def sweep_stale_marked(self) -> int:
        """Kill the marked processes of ``serve``s that no longer run (SIGKILLed without cgroup)."""
        stale = []
        for pid, marker in _marked_processes().items():
            serve_pid, _, rest = marker.partition("-")
            started = rest.partition("-")[0]
            if f"{serve_pid}-{started}" == self._serve or not serve_pid.isdigit():
                continue
            if str(start_time(int(serve_pid))) != started:
                stale.append(pid)
        _kill(stale)
        if stale:
            logger.warning(
                "killed %d process(es) left by a lambdakit serve that was killed", len(stale)
            )
        return len(stale)

    def close(self) -> None:
        """The service stopped: nothing of its environments may be left."""
        if self.tree is not None:
            self.tree.close()
        if self._diag is not None:
            self._diag.close()


class Enclosure:
    """One environment's cgroup (or marker) and the check of who connects."""

    __slots__ = ("_diag", "_known", "_marker", "_name", "_refused", "_roots", "cgroup")

    def __init__(
        self,
        name: str,
        cgroup: Cgroup | None,
        diag: SocketDiag | None,
        roots: Callable[[], Iterable[int]],
        marker: str | None = None,
    ) -> None:
        self._name = name
        self.cgroup = cgroup
        self._diag = diag
        self._roots = roots
        self._marker = marker
        self._known: list[int] = []
        self._refused = 0

    def mark(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment variables of its processes: with the marker when there is no cgroup."""
        if self._marker is None:
            return dict(env)
        return {**env, MARKER: self._marker}

    def preexec(self) -> None:
        """In each child between fork and exec: die with serve, and join the cgroup."""
        die_with_parent()
        if self.cgroup is not None:
            join(self.cgroup.procs)

    def freeze(self, frozen: bool) -> bool:
        """Freeze or thaw the whole environment through its cgroup; False without one (the
        caller then signals its process groups)."""
        return self.cgroup is not None and self.cgroup.freeze(frozen)

    def members(self) -> list[int]:
        """The environment's processes now."""
        if self.cgroup is not None:
            return self.cgroup.pids()
        found = set(_descendants(set(self._roots())))
        if self._marker is not None:
            found.update(pid for pid, m in _marked_processes().items() if m == self._marker)
        return sorted(found)

    def admits(self, local: tuple[str, int], remote: tuple[str, int]) -> bool:
        """Whether the connection ``remote`` -> ``local`` comes from one of our processes."""
        if self._diag is None:
            return True
        peer = self._diag.peer_of(local, remote)
        if peer is not None:
            if self.cgroup is not None and peer.cgroup_id == self.cgroup.id:
                return True
            if self.cgroup is None and held_by(peer.inode, self._known) is not None:
                return True  # without a cgroup, the processes found last time are tried first
            self._known = self.members()
            if held_by(peer.inode, self._known) is not None:
                return True
        self._refused += 1
        log = logger.warning if self._refused == 1 else logger.debug
        log(
            "%s: refused a connection to its Runtime API from %s:%d, a process outside the "
            "environment (logged once; docs/isolation.md)",
            self._name,
            remote[0],
            remote[1],
        )
        return False

    async def sweep(self) -> int:
        """After the Shutdown phase: kill what is left of the environment, remove its cgroup."""
        if self.cgroup is not None:
            left = self.cgroup.kill()
        elif self._marker is not None:
            left = [pid for pid, m in _marked_processes().items() if m == self._marker]
            _kill(left)
        else:
            return 0
        if left:
            logger.info(
                "%s: killed %d process(es) left after its Shutdown phase (%s)",
                self._name,
                len(left),
                ", ".join(map(str, left[:10])),
            )
        if self.cgroup is not None:
            if not await self.cgroup.wait_empty():
                logger.error(
                    "%s: processes still in %s after SIGKILL", self._name, self.cgroup.path
                )
            self.cgroup.remove()
        else:
            deadline = time.monotonic() + _GONE_TIMEOUT
            while any(map(_alive, left)):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
        return len(left)


def _marked_processes() -> dict[int, str]:
    """Every process whose environment has :data:`MARKER`, with its value."""
    found: dict[int, str] = {}
    for pid in pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read()
        except OSError:
            continue
        at = variables.find(_MARKER_PREFIX)
        while at > 0 and variables[at - 1] != 0:
            at = variables.find(_MARKER_PREFIX, at + 1)
        if at >= 0:
            end = variables.find(b"\0", at)
            value = variables[at + len(_MARKER_PREFIX) : end if end >= 0 else None]
            found[pid] = value.decode("ascii", "replace")
    return found


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _descendants(roots: set[int]) -> list[int]:
    """``roots``, the processes in their process groups, and their descendants (``/proc``)."""
    parents: dict[int, list[int]] = {}
    found = set(roots)
    for pid, ppid, pgid in process_table():
        if pgid in roots:
            found.add(pid)
        parents.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for child in parents.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


#: For environments built without a service (tests of the core): no cgroup, no check.
UNCONTAINED = Containment(None, isolate=False, marks=False)
