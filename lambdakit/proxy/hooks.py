"""The hooks a Runtime API proxy offers: one signature, ``(call, forward) -> reply``.

Each hook receives the runtime's :class:`~lambdakit.proxy.calls.Call` and ``forward``, which sends
a call upstream and resolves with upstream's :class:`~lambdakit.proxy.calls.Reply`.  Whatever the
hook returns is what the runtime gets.  So a hook may

* inspect: look at the call, ``return await forward(call)``, look at the reply;
* rewrite: forward a changed call (``call.with_body(...)``), or return a changed reply;
* delay: await something before forwarding (the post-runner holds ``next`` this way) or after;
* answer locally: return a :class:`Reply` without forwarding at all.

A hook that is not overridden costs nothing: the proxy forwards such calls from its protocol
callbacks without creating a task.  Calls of kind ``OTHER`` (ping, Extensions and Telemetry
APIs) are never hooked.  Exceptions escaping a hook are logged and the runtime gets a 502.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lambdakit.proxy.calls import Call, CallKind, Reply

#: Sends a call upstream; resolves with upstream's reply.
Forward = Callable[[Call], Awaitable[Reply]]
#: The shape of every hook.
Hook = Callable[[Call, Forward], Awaitable[Reply]]


class Hooks:
    """Subclass and override the hooks you need; the defaults forward unchanged."""

    async def on_next(self, call: Call, forward: Forward) -> Reply:
        """``GET next``: the reply carries the event (see ``Invocation.from_reply``)."""
        return await forward(call)

    async def on_response(self, call: Call, forward: Forward) -> Reply:
        """``POST …/{id}/response``: ``call.body`` is ``bytes``, or a ``BodyStream`` if streamed."""
        return await forward(call)

    async def on_error(self, call: Call, forward: Forward) -> Reply:
        """``POST …/{id}/error``."""
        return await forward(call)

    async def on_init_error(self, call: Call, forward: Forward) -> Reply:
        """``POST /runtime/init/error``."""
        return await forward(call)

    async def aclose(self) -> None:
        """Called once, after the runtime behind the proxy has exited (clean up here)."""


_HOOK_NAMES = {
    CallKind.NEXT: "on_next",
    CallKind.RESPONSE: "on_response",
    CallKind.ERROR: "on_error",
    CallKind.INIT_ERROR: "on_init_error",
}


def active_hooks(hooks: Hooks) -> dict[CallKind, Hook]:
    """The hooks ``hooks`` overrides, by call kind (the others take the fast path)."""
    found: dict[CallKind, Hook] = {}
    for kind, name in _HOOK_NAMES.items():
        if getattr(type(hooks), name) is not getattr(Hooks, name):
            found[kind] = getattr(hooks, name)
    return found
