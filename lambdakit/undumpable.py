"""Keep a secret-holding process out of reach of other processes of the same user (Linux).

``lambdakit serve --amqp`` and ``lambdakit gateway`` hold the broker's password; the functions
``serve`` runs are processes of the same user, which could otherwise read
``/proc/<serve's pid>/environ`` or its memory.  ``PR_SET_DUMPABLE 0`` makes both readable only
to root (and turns off core dumps).  It does not hide the command line: a password given in
``--amqp`` shows in ``ps``; give it in ``AMQP_URI`` / ``AMQP_PASSWORD`` instead.  Children do not
inherit it (``execve`` resets it), so runtimes stay debuggable.  Elsewhere it does nothing.
"""

from __future__ import annotations

from lambdakit.deathsig import prctl

_PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """Make this process undumpable; True if the kernel took it."""
    return prctl is not None and prctl(_PR_SET_DUMPABLE, 0) == 0
