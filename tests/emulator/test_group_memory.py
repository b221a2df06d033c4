"""Which processes an environment's memory figure counts (Max Memory Used in REPORT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lambdakit.emulator import processes

_HOLDER = "x = b'x' * (64 * 1024 * 1024); import time; time.sleep(60)"


@pytest.fixture
def family() -> Iterator[subprocess.Popen[bytes]]:
    """A shell leading its own group, with a child that holds 64 MB (the group is killed)."""
    leader = subprocess.Popen(
        ["bash", "-c", f'{sys.executable} -c "{_HOLDER}" & wait'], start_new_session=True
    )
    try:
        yield leader
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(10)


def _members_when_ready(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        members = processes._group_members(pid)
        if len(members) == 2 and processes._peak_rss_kb(members[1]) > 60 * 1024:
            return members
        time.sleep(0.05)
    raise AssertionError(f"the child never showed: {processes._group_members(pid)}")


def test_the_children_lists_find_what_a_scan_of_proc_finds(
    family: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert processes._HAS_CHILDREN_LISTS  # this kernel keeps them: the path taken here
    listed = _members_when_ready(family.pid)
    assert listed[0] == family.pid
    monkeypatch.setattr(processes, "_HAS_CHILDREN_LISTS", False)
    assert sorted(processes._group_members(family.pid)) == sorted(listed)
    total_kb = sum(processes._peak_rss_kb(pid) for pid in listed)
    assert total_kb > 64 * 1024  # the child's memory counts
