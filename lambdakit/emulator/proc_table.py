"""Every process on the machine with its parent and process group, from Linux ``/proc``.

Read by the environments' memory figures (their process groups, ``processes.py``) and by
containment (an environment's descendants, ``containment.py``).  Each process costs three system
calls (``os.open``, ``os.read``, ``os.close``: Python's ``open`` adds an ``fstat``, an ``ioctl``
and an ``lseek``), and callers run it on the event loop, so they read it seldom.
"""

from __future__ import annotations

import os


def pids() -> list[int]:
    """Every process id in ``/proc`` (empty where there is none)."""
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def process_table() -> list[tuple[int, int, int]]:
    """``(pid, parent pid, process group)`` of every process (empty where there is no ``/proc``);
    processes that exit while it is read are left out."""
    table: list[tuple[int, int, int]] = []
    for pid in pids():
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            try:
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
            fields = data.rsplit(b")", 1)[1].split()  # the name, in parentheses, may hold spaces
            table.append((pid, int(fields[1]), int(fields[2])))
        except (OSError, IndexError, ValueError):
            continue
    return table
