"""Finding the socket at the other end of a loopback connection, and who holds it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lambdakit.emulator.peer import SocketDiag, _from_proc_net, held_by


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def connection(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the client's socket, the accepted one) over loopback."""
    family = request.param
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family) as listener:
        try:
            listener.bind((host, 0))
        except OSError:
            pytest.skip(f"no {host} here")
        listener.listen()
        client = socket.socket(family)
        client.connect(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            yield client, accepted


def _addresses(accepted: socket.socket) -> tuple[tuple[str, int], tuple[str, int]]:
    local, remote = accepted.getsockname(), accepted.getpeername()
    return (local[0], local[1]), (remote[0], remote[1])


def test_sock_diag_finds_the_clients_socket_and_its_cgroup(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, accepted = connection
    diag = SocketDiag()
    try:
        peer = diag.peer_of(*_addresses(accepted))
    finally:
        diag.close()
    assert peer is not None
    assert peer.inode == os.fstat(client.fileno()).st_ino
    with open("/proc/self/cgroup") as lines:
        own = next(line[3:].strip() for line in lines if line.startswith("0::"))
    mount = _cgroup2_mount()
    if peer.cgroup_id is not None and mount is not None:
        assert peer.cgroup_id == os.stat(mount + own).st_ino


def test_proc_net_finds_the_same_socket(connection: tuple[socket.socket, socket.socket]) -> None:
    client, accepted = connection
    local, remote = _addresses(accepted)
    peer = _from_proc_net(accepted.family, remote, local)
    assert peer is not None and peer.inode == os.fstat(client.fileno()).st_ino


def test_a_socket_that_is_gone_is_not_found() -> None:
    diag = SocketDiag()
    try:
        assert diag.peer_of(("127.0.0.1", 9), ("127.0.0.1", 1)) is None
    finally:
        diag.close()


def test_held_by_names_the_process_holding_the_socket(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, _ = connection
    inode = os.fstat(client.fileno()).st_ino
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert held_by(inode, [other.pid]) is None
        assert held_by(inode, [other.pid, os.getpid()]) == os.getpid()
    finally:
        other.kill()
        other.wait()


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            before, _, after = line.partition(" - ")
            if after.startswith("cgroup2 "):
                return before.split()[4]
    return None
