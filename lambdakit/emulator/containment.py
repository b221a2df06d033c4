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

Without a usable cgroup v2 hierarchy the environment's processes are its process groups and
their descendants (found in ``/proc``): connections are still checked, but a process that left
its group and whose parent died is neither recognised nor swept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from lambdakit.deathsig import die_with_parent
from lambdakit.emulator.cgroups import Cgroup, CgroupTree, join
from lambdakit.emulator.peer import SocketDiag, held_by

logger = logging.getLogger("lambdakit.containment")


class Containment:
    """The service's side: the cgroup tree (where usable) and the socket lookups."""

    def __init__(self, tree: CgroupTree | None, isolate: bool) -> None:
        self.tree = tree
        self.isolate = isolate
        self._diag = SocketDiag() if isolate else None

    @classmethod
    def open(cls, isolate: bool) -> Containment:
        """Make this serve's cgroup where cgroup v2 lets us, and sweep what killed serves left."""
        tree = CgroupTree.open()
        if tree is None:
            logger.info(
                "cgroup v2 is not usable here: processes that leave their process group "
                "(setsid) are not stopped with their environment (docs/isolation.md)"
            )
        else:
            tree.sweep_stale()
        return cls(tree, isolate)

    def enclosure(self, name: str, roots: Callable[[], Iterable[int]]) -> Enclosure:
        """A new environment's; ``roots`` are the pids it spawned (for when there is no cgroup)."""
        cgroup = None
        if self.tree is not None:
            try:
                cgroup = self.tree.environment(name)
            except OSError as exc:
                logger.warning("%s: cannot make its cgroup: %s", name, exc.strerror or exc)
        return Enclosure(name, cgroup, self._diag, roots)

    def close(self) -> None:
        """The service stopped: nothing of its environments may be left."""
        if self.tree is not None:
            self.tree.close()
        if self._diag is not None:
            self._diag.close()


class Enclosure:
    """One environment's cgroup (or process groups) and the check of who connects."""

    __slots__ = ("_diag", "_name", "_refused", "_roots", "cgroup")

    def __init__(
        self,
        name: str,
        cgroup: Cgroup | None,
        diag: SocketDiag | None,
        roots: Callable[[], Iterable[int]],
    ) -> None:
        self._name = name
        self.cgroup = cgroup
        self._diag = diag
        self._roots = roots
        self._refused = 0

    def preexec(self) -> None:
        """In each child between fork and exec: die with serve, and join the cgroup."""
        die_with_parent()
        if self.cgroup is not None:
            join(self.cgroup.procs)

    def members(self) -> list[int]:
        """The environment's processes now."""
        if self.cgroup is not None:
            return self.cgroup.pids()
        return _descendants(set(self._roots()))

    def admits(self, local: tuple[str, int], remote: tuple[str, int]) -> bool:
        """Whether the connection ``remote`` -> ``local`` comes from one of our processes."""
        if self._diag is None:
            return True
        peer = self._diag.peer_of(local, remote)
        if peer is not None:
            if self.cgroup is not None and peer.cgroup_id == self.cgroup.id:
                return True
            if held_by(peer.inode, self.members()) is not None:
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
        if self.cgroup is None:
            return 0
        left = self.cgroup.kill()
        if left:
            logger.info(
                "%s: killed %d process(es) left after its Shutdown phase (%s)",
                self._name,
                len(left),
                ", ".join(map(str, left[:10])),
            )
        if not await self.cgroup.wait_empty():
            logger.error("%s: processes still in %s after SIGKILL", self._name, self.cgroup.path)
        self.cgroup.remove()
        return len(left)


def _descendants(roots: set[int]) -> list[int]:
    """``roots``, the processes in their process groups, and their descendants (``/proc``)."""
    parents: dict[int, list[int]] = {}
    found = set(roots)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return sorted(found)
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            ppid, pgid = int(fields[1]), int(fields[2])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(entry)
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
UNCONTAINED = Containment(None, isolate=False)
