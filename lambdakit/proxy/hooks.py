"""The hooks a Runtime API proxy offers: one signature, ``(call, forward) -> reply``.

Each hook receives the runtime's :class:`~lambdakit.proxy.calls.Call` and ``forward``, which sends
a call upstream and returns upstream's :class:`~lambdakit.proxy.calls.Reply`.  Whatever the hook
returns is what the runtime gets.  So a hook may

* inspect: look at the call, ``reply = forward(call)``, look at the reply;
* rewrite: forward a changed call (``call.with_body(...)``), or return a changed reply;
* delay: block before forwarding (the post-runner holds ``next`` this way) or after;
* answer locally: return a :class:`Reply` without forwarding at all.

Hooks are plain functions, called on the thread that serves the runtime's connection (one
thread per connection, see :mod:`lambdakit.proxy.server`).  Blocking in a hook holds that call
and only that call: a runtime's other connections are served meanwhile.  Hooks for different
connections may therefore run at the same time; share state between them with care (the
post-runner hands its command from ``on_response`` to the next ``on_next``, which the runtime
makes only after it got the response's reply, so no lock is needed there).

``forward`` of a buffered ``/response`` that the Runtime API is bound to accept (the invocation
this proxy delivered, within its deadline, at most 6 MB, the call as received) returns the
``202`` at once, while the response is on its way; upstream's own reply is read after the
runtime has its answer (see ``RuntimeConnection.forward``).

A hook that is not overridden is not called: such calls are forwarded directly.  Calls of kind
``OTHER`` (ping, Extensions and Telemetry APIs) are never hooked.  An exception escaping a hook
is logged and the runtime gets a 502.
"""

from __future__ import annotations

from collections.abc import Callable

from lambdakit.proxy.calls import Call, CallKind, Reply, Result

#: Sends a call upstream; returns upstream's reply (raises UpstreamError if there is none).
Forward = Callable[[Call], Reply]
#: The shape of every hook.
Hook = Callable[[Call, Forward], Reply]


class Hooks:
    """Subclass and override the hooks you need; the defaults forward unchanged."""

    def on_next(self, call: Call, forward: Forward) -> Reply:
        """``GET next``: the reply carries the event (see ``ProxiedInvocation.from_reply``)."""
        return forward(call)

    def on_response(self, call: Call, forward: Forward) -> Reply:
        """``POST …/{id}/response``: ``call.body`` is ``bytes``, or a ``ForwardedBody``
        if streamed."""
        return forward(call)

    def on_error(self, call: Call, forward: Forward) -> Reply:
        """``POST …/{id}/error``."""
        return forward(call)

    def on_init_error(self, call: Call, forward: Forward) -> Reply:
        """``POST /runtime/init/error``."""
        return forward(call)

    # Observers: they see the invocations go by and change nothing, so the proxy calls them
    # from its fast lane too (lambdakit.proxy.relay), where the hooks above would cost it the
    # Call and Reply objects of every call.

    #: At most this much of a streamed response is kept for :meth:`on_result`.
    result_limit = 1024 * 1024
    #: The results :meth:`on_result` is given: RESPONSE, ERROR or both (fewer is cheaper).
    results: frozenset[CallKind] = frozenset((CallKind.RESPONSE, CallKind.ERROR))

    def before_next(self) -> None:
        """Called on the runtime's thread before each ``GET next`` goes upstream (before
        ``on_next``, if that is overridden too).  Blocking here holds the ``next``: the
        environment stays thawed and the next invocation waits.  Raise
        :class:`~lambdakit.proxy.sockets.HungUp` to drop the runtime's connection."""

    def on_result(self, result: Result) -> None:
        """Called once the Runtime API accepted an invocation's result (``/response`` or
        ``/error``, buffered or streamed), just before the runtime has its answer: so what it
        starts is there for ``before_next`` when the runtime asks for its next event."""

    def close(self) -> None:
        """Called once, after the runtime behind the proxy has exited (clean up here)."""


_HOOK_NAMES = {
    CallKind.NEXT: "on_next",
    CallKind.RESPONSE: "on_response",
    CallKind.ERROR: "on_error",
    CallKind.INIT_ERROR: "on_init_error",
}


def overrides(hooks: Hooks, name: str) -> bool:
    """``hooks`` overrides the method ``name`` of :class:`Hooks`."""
    return getattr(type(hooks), name) is not getattr(Hooks, name)


def active_hooks(hooks: Hooks) -> dict[CallKind, Hook]:
    """The hooks ``hooks`` overrides, by call kind (the others are forwarded directly)."""
    found: dict[CallKind, Hook] = {}
    for kind, name in _HOOK_NAMES.items():
        if overrides(hooks, name):
            found[kind] = getattr(hooks, name)
    return found
