"""Who is at the other end of a loopback TCP connection: its socket's inode and cgroup.

Theory of operation
-------------------
TCP has no ``SO_PEERCRED``: the kernel does not say which process connected.  It does keep
both ends of a loopback connection in the same table, so the peer's socket is the one whose
local address is our connection's remote address and whose remote address is our local one.
:class:`SocketDiag` asks the kernel for exactly that socket through netlink ``sock_diag``
(``NETLINK_SOCK_DIAG``, one request, no dump; https://man7.org/linux/man-pages/man7/sock_diag.7.html):
the reply carries the socket's inode and, since Linux 5.7, ``INET_DIAG_CGROUP_ID``, the cgroup
v2 id (its directory's inode) of the process that created the socket.  One query costs a few
microseconds, and is made once per accepted connection (runtimes keep theirs alive).

Where netlink is not available the inode is read from ``/proc/net/tcp`` or ``/proc/net/tcp6``
(the lines grow with every socket of the machine).  From an inode, :func:`held_by` finds which
of a few given processes holds ``socket:[inode]`` among its file descriptors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Iterable

from lambdakit.emulator.values import value

logger = logging.getLogger("lambdakit.peer")

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_INET_DIAG_CGROUP_ID = 21
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2: family, protocol, ext, pad, states
_PORTS = struct.Struct("!HH")  # inet_diag_sockid: source and destination port (big-endian)
_TAIL = struct.Struct("=III")  # inet_diag_sockid: interface, cookie (none: 0xffffffff twice)
_ATTRIBUTE = struct.Struct("=HH")
#: In the reply: the uid and inode after family, state, timer, retransmits, the sockid (48
#: bytes), expires, the read and write queues; the attributes after the 72-byte message.
_INODE_AT = _HEADER.size + 4 + 48 + 12
_ATTRIBUTES_AT = _HEADER.size + 72
_ANY = 0xFFFFFFFF


@value
class PeerSocket:
    """The socket at the other end: its inode, and its creator's cgroup id where known."""

    inode: int
    cgroup_id: int | None


class SocketDiag:
    """Looks up the other end of our loopback connections (one netlink socket, opened lazily)."""

    def __init__(self) -> None:
        self._netlink: socket.socket | None = None
        self._netlink_failed = False
        self._sequence = 0

    def peer_of(self, local: tuple[str, int], remote: tuple[str, int]) -> PeerSocket | None:
        """The socket whose address is ``remote`` and whose peer is ``local``; None if gone."""
        family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
        if not self._netlink_failed:
            try:
                return self._ask(family, remote, local)
            except OSError as exc:
                logger.info("sock_diag is not available (%s); reading /proc/net instead", exc)
                self._netlink_failed = True
                self.close()
        return _from_proc_net(family, remote, local)

    def _ask(
        self, family: int, source: tuple[str, int], destination: tuple[str, int]
    ) -> PeerSocket | None:
        if self._netlink is None:
            self._netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
            self._netlink.settimeout(1.0)
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        request = (
            _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, _ANY)
            + _PORTS.pack(source[1], destination[1])
            + socket.inet_pton(family, source[0]).ljust(16, b"\0")
            + socket.inet_pton(family, destination[0]).ljust(16, b"\0")
            + _TAIL.pack(0, _ANY, _ANY)
        )
        header = _HEADER.pack(
            _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, self._sequence, 0
        )
        self._netlink.send(header + request)
        while True:
            reply = self._netlink.recv(8192)
            length, kind, _, sequence, _ = _HEADER.unpack_from(reply)
            if sequence == self._sequence:
                break  # an older reply (a lookup that timed out) is skipped
        if kind == _NLMSG_ERROR:
            return None  # no such socket (the peer is gone already)
        uid_inode = struct.unpack_from("=II", reply, _INODE_AT)
        cgroup_id = None
        at = _ATTRIBUTES_AT
        while at + _ATTRIBUTE.size <= length:
            size, attribute = _ATTRIBUTE.unpack_from(reply, at)
            if size < _ATTRIBUTE.size:
                break
            if attribute == _INET_DIAG_CGROUP_ID:
                cgroup_id = struct.unpack_from("=Q", reply, at + _ATTRIBUTE.size)[0]
            at += (size + 3) & ~3
        return PeerSocket(uid_inode[1], cgroup_id)

    def close(self) -> None:
        if self._netlink is not None:
            self._netlink.close()
            self._netlink = None


def _from_proc_net(
    family: int, source: tuple[str, int], destination: tuple[str, int]
) -> PeerSocket | None:
    """The inode of the TCP socket ``source`` -> ``destination``, from ``/proc/net/tcp[6]``."""
    local = f"{_proc_address(family, source[0])}:{source[1]:04X}"
    remote = f"{_proc_address(family, destination[0])}:{destination[1]:04X}"
    table = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        with open(table) as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                    return PeerSocket(int(fields[9]), None)
    except (OSError, ValueError):
        pass
    return None


def _proc_address(family: int, address: str) -> str:
    """An address as ``/proc/net/tcp`` prints it: each 32-bit word in host byte order."""
    packed = socket.inet_pton(family, address)
    return "".join(f"{word:08X}" for word in struct.unpack(f"={len(packed) // 4}I", packed))


def held_by(inode: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` has ``socket:[inode]`` open; None if none of them does."""
    target = f"socket:[{inode}]"
    for pid in pids:
        directory = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(directory):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{directory}/{fd}") == target:
                        return pid
    return None
