"""Which processes an environment's memory figure counts (Max Memory Used in REPORT): its
process group, read for all environments at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lambdakit.emulator import processes

_MARK = "group-memory-holder"
_HOLD = f"x = b'x' * (64 * 1024 * 1024); import time; time.sleep(60)  # {_MARK}"
_HOLDER = f'{sys.executable} -c "{_HOLD}"'


@pytest.fixture
def leaders() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for leader in started:  # each group, then what left it
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(10)
    subprocess.run(["pkill", "-KILL", "-f", _MARK], check=False)


def _group(leaders: list[subprocess.Popen[bytes]], script: str) -> int:
    leader = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    leaders.append(leader)
    return leader.pid


def _memory_mb(pgid: int) -> int:
    table = processes._ProcessGroups()
    return sum(processes._peak_rss_kb(pid) for pid in table.members(pgid, time.monotonic())) // 1024


def test_a_group_counts_its_children_and_orphans_but_not_who_left_it(
    leaders: list[subprocess.Popen[bytes]],
) -> None:
    child = _group(leaders, f"{_HOLDER} & wait")
    orphan = _group(leaders, f"( {_HOLDER} & ) ; sleep 60")  # double fork: init adopts it
    gone = _group(leaders, f"setsid {_HOLDER} & sleep 60")  # a session, and a group, of its own
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _memory_mb(child) > 60 and _memory_mb(orphan) > 60:
            break
        time.sleep(0.05)
    assert _memory_mb(child) > 60
    assert _memory_mb(orphan) > 60
    time.sleep(0.3)  # the setsid child has had as long
    assert _memory_mb(gone) < 60


def test_one_table_serves_every_group_and_reads_a_new_one_at_once() -> None:
    table = processes._ProcessGroups()
    now = time.monotonic()
    assert os.getpid() in table.members(os.getpgid(0), now)
    newcomer = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        # Not in the table read a moment ago: read again, but not more than once a second.
        assert table.members(newcomer.pid, now + 0.5) == [newcomer.pid]  # the leader alone
        assert newcomer.pid in table.members(newcomer.pid, now + 1.5)
    finally:
        newcomer.kill()
        newcomer.wait(10)
