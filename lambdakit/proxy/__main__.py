"""``python -m lambdakit.proxy [--log-calls] [--] COMMAND [ARGS...]``.

A transparent Runtime API proxy in front of COMMAND: no hook changes anything.  Useful to see
a runtime's calls (``--log-calls``) and to measure the proxy's own cost (bench/).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from lambdakit.proxy.calls import Call, Reply
from lambdakit.proxy.hooks import Forward, Hooks
from lambdakit.proxy.server import RuntimeApiProxy
from lambdakit.proxy.supervise import run_runtime
from lambdakit.wire import environment as env

logger = logging.getLogger("lambdakit.proxy.calls")


class CallLogger(Hooks):
    """Logs each hooked call and its reply status."""

    def _log(self, call: Call, forward: Forward) -> Reply:
        reply = forward(call)
        size = len(call.body) if isinstance(call.body, bytes) else -1
        logger.info("%s %s (%d bytes) -> %d", call.method, call.target, size, reply.status)
        return reply

    on_next = on_response = on_error = on_init_error = _log


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdakit.proxy", description=__doc__)
    parser.add_argument("--log-calls", action="store_true", help="log every call on stderr")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or env.RUNTIME_API not in environ:
        parser.error(f"needs a COMMAND and {env.RUNTIME_API}")
    logging.basicConfig(level=logging.INFO, format="proxy %(levelname)s: %(message)s")
    proxy = RuntimeApiProxy(environ[env.RUNTIME_API], CallLogger() if args.log_calls else Hooks())
    proxy.start()
    return run_runtime(command, proxy, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
