"""RuntimeApiProxy on real loopback sockets, between a raw client and a fake Runtime API."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from lambdakit.proxy import (
    Call,
    Forward,
    ForwardedBody,
    Hooks,
    ProxiedInvocation,
    RecordingStream,
    Reply,
    RuntimeApiProxy,
)
from tests.proxy.support import (
    NEXT,
    OK_202,
    TIMEOUT,
    FakeRuntimeApi,
    RawClient,
    Responder,
    Seen,
    answer_next_and_accept,
    event_reply,
    fake_runtime_api,
    post,
)

RESPONSE = "/2018-06-01/runtime/invocation/req-1/response"
STREAM_HEAD = (
    b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: api\r\n"
    b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
    b"Trailer: Lambda-Runtime-Function-Error-Type\r\n\r\n"
)


def proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lambdakit-proxy"]


def run_scenario(
    scenario: Callable[[RuntimeApiProxy, FakeRuntimeApi], None],
    hooks: Hooks | None = None,
    responder: Responder = answer_next_and_accept,
) -> None:
    with fake_runtime_api(responder) as upstream, RuntimeApiProxy(upstream.address, hooks) as proxy:
        proxy.start()
        scenario(proxy, upstream)
    assert not proxy_threads(), "close() left proxy threads behind"


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_unhooked_calls_pass_through_unchanged_on_one_keep_alive_upstream_connection() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        for _ in range(20):  # curl style: a new runtime connection per call
            client = RawClient(proxy.address)
            client.send(NEXT)
            status, headers, body = client.reply()
            assert (status, body) == (200, b'{"n": 1}')
            assert headers["lambda-runtime-aws-request-id"] == "req-1"
            client.send(post(RESPONSE, b"[1]"))
            assert client.reply()[0] == 202
            client.close()
        assert upstream.connections == 1
        assert [s.head.raw for s in upstream.requests[::2]] == [NEXT] * 20
        assert bytes(upstream.requests[1].body) == b"[1]"
        # Threads are reused, not made per connection: one serving, one waiting in accept(),
        # and at times one still reading upstream's reply to a response it accepted at once
        # while this client's next connection is already being served.
        assert proxy.thread_count <= 4

    run_scenario(scenario)


class Rewriter(Hooks):
    """Rewrites events, upper-cases responses, refuses errors without forwarding them."""

    def __init__(self) -> None:
        self.invocations: list[ProxiedInvocation] = []

    def on_next(self, call: Call, forward: Forward) -> Reply:
        reply = forward(call)
        invocation = ProxiedInvocation.from_reply(reply)
        assert invocation is not None
        self.invocations.append(invocation)
        return reply.with_body(b'{"rewritten": true}')

    def on_response(self, call: Call, forward: Forward) -> Reply:
        assert isinstance(call.body, bytes)
        return forward(call.with_body(call.body.upper()))

    def on_error(self, call: Call, forward: Forward) -> Reply:
        return Reply.json(403, {"errorType": "Refused", "errorMessage": call.request_id})


def test_hooks_inspect_rewrite_and_answer_calls() -> None:
    hooks = Rewriter()

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        status, headers, body = client.reply()
        assert (status, body) == (200, b'{"rewritten": true}')
        assert headers["content-length"] == str(len(body))
        assert hooks.invocations[0].request_id == "req-1"
        assert hooks.invocations[0].event == b'{"n": 1}'
        assert hooks.invocations[0].function_arn.endswith(":function:f")
        client.send(post(RESPONSE, b"abc"))
        assert client.reply()[0] == 202
        client.send(post("/2018-06-01/runtime/invocation/req-1/error", b"{}"))
        status, _, body = client.reply()
        assert status == 403 and b'"req-1"' in body
        client.close()
        assert [s.head.target.rsplit("/", 1)[-1] for s in upstream.requests] == [
            "next",
            "response",
        ]
        assert bytes(upstream.requests[1].body) == b"ABC"

    run_scenario(scenario, hooks)


class Broken(Hooks):
    def on_next(self, call: Call, forward: Forward) -> Reply:
        raise RuntimeError("hook bug")


def test_a_failing_hook_gives_the_runtime_a_502_not_a_hang() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        status, _, body = client.reply()
        assert status == 502 and b"hook bug" in body
        client.send(NEXT)  # the connection is still usable
        assert client.reply()[0] == 502
        client.close()

    run_scenario(scenario, Broken())


class Recording(Hooks):
    """The hooked path must stream too: RecordingStream passes chunks on as they come."""

    def __init__(self) -> None:
        self.recorder: RecordingStream | None = None

    def on_response(self, call: Call, forward: Forward) -> Reply:
        assert isinstance(call.body, ForwardedBody)
        self.recorder = RecordingStream(call.body, limit=8)
        return forward(call.with_body(self.recorder))


@pytest.mark.parametrize("hooks", [None, Recording()], ids=["unhooked", "hooked"])
def test_a_streamed_response_flows_through_unbuffered_with_its_trailers(
    hooks: Recording | None,
) -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(STREAM_HEAD + b"6\r\nfirst \r\n")
        # Upstream gets the first chunk while the runtime has not sent the rest.
        assert upstream.first_chunk.wait(TIMEOUT)
        seen = upstream.requests[0]
        assert bytes(seen.body) == b"first " and not seen.complete.is_set()
        client.send(b"6\r\nsecond\r\n0\r\n")
        client.send(b"Lambda-Runtime-Function-Error-Type: X.Y\r\n\r\n")
        assert client.reply()[0] == 202
        assert bytes(seen.body) == b"first second"
        assert seen.trailers == (("lambda-runtime-function-error-type", "X.Y"),)
        client.send(NEXT)  # the connection goes on
        assert client.reply()[0] == 200
        client.close()
        if hooks is not None:
            assert hooks.recorder is not None
            assert (hooks.recorder.recorded, hooks.recorder.size) == ([b"first ", b"se"], 12)
            assert hooks.recorder.truncated

    run_scenario(scenario, hooks)


def test_a_hook_answering_a_stream_without_reading_it_closes_the_connection() -> None:
    class Refuse(Hooks):
        def on_response(self, call: Call, forward: Forward) -> Reply:
            return Reply.json(400, {"errorType": "NoStreams"})

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(STREAM_HEAD + b"6\r\nfirst \r\n")
        assert client.reply()[0] == 400
        assert client.at_eof()  # the rest of the body cannot be skipped safely
        client.close()
        assert upstream.requests == []

    run_scenario(scenario, Refuse())


def never_answer_next(seen: Seen) -> bytes | None:
    return None if seen.head.method == "GET" else OK_202


@pytest.mark.parametrize("hooks", [None, Rewriter()], ids=["unhooked", "hooked"])
def test_a_runtime_hanging_up_during_next_closes_the_upstream_connection(
    hooks: Hooks | None,
) -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        assert upstream.got_request.wait(TIMEOUT)
        client.close()
        assert upstream.closed.wait(TIMEOUT)

    run_scenario(scenario, hooks, never_answer_next)


def test_a_response_posted_while_next_is_held_takes_another_upstream_connection() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        waiting = RawClient(proxy.address)
        waiting.send(NEXT)
        assert upstream.got_request.wait(TIMEOUT)
        other = RawClient(proxy.address)
        other.send(post(RESPONSE, b"x"))
        assert other.reply()[0] == 202
        assert upstream.connections == 2
        other.close()
        waiting.close()

    run_scenario(scenario, None, never_answer_next)


def test_expect_100_continue_is_answered_by_the_proxy() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        head = post(RESPONSE, b"", "Expect: 100-continue")
        client.send(head.replace(b"Content-Length: 0", b"Content-Length: 4"))
        assert client.read_head().startswith(b"HTTP/1.1 100")
        client.send(b"body")
        assert client.reply()[0] == 202
        assert bytes(upstream.requests[0].body) == b"body"
        client.close()

    run_scenario(scenario)


def test_a_call_on_a_keep_alive_connection_upstream_closed_is_retried_on_a_fresh_one() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        assert client.reply()[0] == 200
        upstream.drop_connections()  # a server closing an idle keep-alive connection
        assert wait_until(upstream.closed.is_set)
        client.send(post(RESPONSE, b"again"))
        assert client.reply()[0] == 202
        # The response may be accepted before it reaches upstream (see test_early_accept_*).
        assert wait_until(lambda: bytes(upstream.requests[-1].body) == b"again")
        assert upstream.connections == 2
        client.close()

    run_scenario(scenario)


def test_an_unreachable_runtime_api_is_a_502_naming_it() -> None:
    with fake_runtime_api() as upstream:
        address = upstream.address
    with RuntimeApiProxy(address) as proxy:  # nothing listens there any more
        proxy.start()
        client = RawClient(proxy.address)
        client.send(NEXT)
        status, _, body = client.reply()
        assert status == 502 and address.encode() in body
        client.close()


def test_a_malformed_request_gets_a_400_and_the_connection_closes() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(b"GARBAGE\r\n\r\n")
        assert client.reply()[0] == 400
        assert client.at_eof()
        client.close()

    run_scenario(scenario)


@pytest.mark.parametrize(
    "request_bytes",
    [
        post(RESPONSE, b"3\r\nabc\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),  # and a length
        NEXT.replace(b"Host: api\r\n", b"Host: api\r\n folded\r\n"),
        NEXT.replace(b"Host: api", b"Host: a\x00pi"),
        NEXT.replace(b"Host: api", b"Host : api"),
    ],
    ids=["length-and-chunked", "obs-fold", "nul", "space-before-colon"],
)
def test_requests_the_codec_refuses_get_a_400_and_never_go_upstream(request_bytes: bytes) -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(request_bytes)
        assert client.reply()[0] == 400
        assert client.at_eof()
        client.close()
        assert upstream.requests == []

    run_scenario(scenario)


def test_close_wakes_every_thread_and_leaves_none_behind() -> None:
    """Threads in accept(), in a runtime's recv and in a long poll upstream all end."""
    with fake_runtime_api(never_answer_next) as upstream:
        proxy = RuntimeApiProxy(upstream.address)
        proxy.start()
        polling = RawClient(proxy.address)
        polling.send(NEXT)
        assert upstream.got_request.wait(TIMEOUT)
        idle = RawClient(proxy.address)
        idle.send(NEXT[:20])  # a request begun: accepted, its thread waits for the rest
        assert wait_until(lambda: proxy.thread_count == 3)
        started = time.monotonic()
        proxy.close()
        assert time.monotonic() - started < 1.0
        assert proxy.thread_count == 0 and not proxy_threads()
        assert polling.at_eof() and idle.at_eof()
        polling.close()
        idle.close()


def test_both_sides_of_the_proxy_send_small_writes_at_once_tcp_nodelay() -> None:
    """Nagle off on the runtime's connection and on upstream's (issue 15).

    Each proxied message goes out in one write; with Nagle on, a write made while an earlier
    small one is unacknowledged waits for the peer's (possibly delayed) ACK.
    """

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)  # held upstream: both of its connections are open now
        assert upstream.got_request.wait(TIMEOUT)
        downstream = list(proxy._connections)
        upward = [connection._sock for connection in proxy.pool._all]
        assert len(downstream) == 1 and len(upward) == 1
        for sock in downstream + upward:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), sock
        client.close()

    run_scenario(scenario, None, never_answer_next)


@pytest.mark.skipif(not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="Linux only")
def test_the_listener_hands_over_connections_once_their_request_arrived() -> None:
    """TCP_DEFER_ACCEPT: a runtime that opens a connection per call (curl) costs the proxy
    one wake-up per connection, not two (issue 15); a connection that is silent at first is
    still served once it speaks."""

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        listener = proxy._listener
        assert listener is not None
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        connected = time.monotonic()
        late = RawClient(proxy.address)
        time.sleep(0.2)
        if time.monotonic() - connected < 0.8:  # the kernel hands it over after a second
            assert not proxy._connections  # connected, nothing sent: not handed over yet
        late.send(NEXT)
        status, _, body = late.reply()
        assert (status, body) == (200, b'{"n": 1}')
        late.close()

    run_scenario(scenario)


# A /response accepted at once (issue 15) ------------------------------------------------------
def held_response(release: threading.Event, status: bytes = OK_202) -> Responder:
    """Answers next at once; holds each /response's reply until ``release`` is set."""

    def respond(seen: Seen) -> bytes | None:
        if seen.head.method == "GET":
            return answer_next_and_accept(seen)
        release.wait(TIMEOUT)
        return status

    return respond


def test_a_response_for_a_delivered_invocation_is_accepted_at_once_and_next_pipelined() -> None:
    release = threading.Event()

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        assert client.reply()[0] == 200
        started = time.monotonic()
        client.send(post(RESPONSE, b"[1]"))
        status, _, body = client.reply()
        # The runtime has its 202 while upstream still holds its own reply.
        assert (status, body) == (202, b'{"status":"OK"}')
        assert not release.is_set()
        assert time.monotonic() - started < TIMEOUT / 2
        client.send(NEXT)  # goes upstream behind the response, on the same connection
        release.set()
        assert client.reply()[0] == 200  # the second event, once the response's reply came
        assert [seen.head.method for seen in upstream.requests] == ["GET", "POST", "GET"]
        assert bytes(upstream.requests[1].body) == b"[1]"
        assert upstream.connections == 1
        client.close()

    run_scenario(scenario, None, held_response(release))


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("a request id the proxy never delivered", 400),
        ("a response over 6 MB", 413),
        ("a hook that changed the body", 400),
    ],
)
def test_a_response_upstream_may_refuse_waits_for_upstream(case: str, status: int) -> None:
    """Only what the Runtime API is bound to accept is answered early; the rest gets its reply."""
    refusal = f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}".encode()

    def respond(seen: Seen) -> bytes:
        return answer_next_and_accept(seen) if seen.head.method == "GET" else refusal

    class Rewrite(Hooks):
        def on_response(self, call: Call, forward: Forward) -> Reply:
            return forward(call.with_body(b"[2]"))

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        assert client.reply()[0] == 200
        if case.startswith("a request id"):
            client.send(post("/2018-06-01/runtime/invocation/req-9/response", b"[1]"))
        elif case.startswith("a response over"):
            client.send(post(RESPONSE, b"x" * (6 * 1024 * 1024 + 1)))
        else:
            client.send(post(RESPONSE, b"[1]"))
        assert client.reply()[0] == status
        client.close()

    run_scenario(scenario, Rewrite() if case.startswith("a hook") else None, respond)


def test_a_response_refused_after_it_was_accepted_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    release.set()
    refusal = b'HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\n{"x": 1}\n'

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT)
        assert client.reply()[0] == 200
        client.send(post(RESPONSE, b"[1]"))
        assert client.reply()[0] == 202
        client.send(NEXT)
        assert client.reply()[0] == 200  # the runtime goes on; the refusal is in the log
        client.close()
        assert wait_until(lambda: "refused the response for req-1" in caplog.text)

    with caplog.at_level("ERROR", logger="lambdakit.proxy"):
        run_scenario(scenario, None, held_response(release, refusal))


def test_two_responses_in_a_row_are_both_delivered_without_waiting_on_each_other() -> None:
    """A runtime (an LMI worker, say) that posts a second result before asking for next, while
    upstream still holds its reply to the first: the proxy reads that reply, then goes on."""
    release = threading.Event()
    nexts = iter(range(1, 10))

    def respond(seen: Seen) -> bytes:
        if seen.head.method == "GET":
            return event_reply(f"req-{next(nexts)}", b"{}")
        if not release.is_set():
            release.wait(TIMEOUT)
        return OK_202

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        other = RawClient(proxy.address)
        for runtime in (client, other):
            runtime.send(NEXT)
            assert runtime.reply()[0] == 200
        client.send(post("/2018-06-01/runtime/invocation/req-1/response", b"[1]"))
        assert client.reply()[0] == 202  # accepted at once; upstream holds its own reply
        client.send(post("/2018-06-01/runtime/invocation/req-2/response", b"[2]"))
        timer = threading.Timer(0.3, release.set)
        timer.start()
        assert client.reply()[0] == 202
        timer.join()
        assert wait_until(lambda: len(upstream.requests) == 4)
        posted = [bytes(s.body) for s in upstream.requests if s.head.method == "POST"]
        assert posted == [b"[1]", b"[2]"]
        client.close()
        other.close()

    run_scenario(scenario, None, respond)


def test_a_result_does_not_wait_for_another_connections_held_next() -> None:
    """Two workers (Managed Instances): one's next is held by a hook (the post-runner's
    command) while upstream still owes the reply to its response; the other's response is
    answered meanwhile, not after the hook lets go."""
    gate = threading.Event()
    release = threading.Event()
    nexts = iter(range(1, 10))

    armed = threading.Event()

    class Gate(Hooks):
        def before_next(self) -> None:
            if armed.is_set():
                gate.wait(TIMEOUT)

    def respond(seen: Seen) -> bytes:
        if seen.head.method == "GET":
            return event_reply(f"req-{next(nexts)}", b"{}")
        if seen.head.target.endswith("/req-1/response"):
            release.wait(TIMEOUT)
        return OK_202

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        first, second = RawClient(proxy.address), RawClient(proxy.address)
        for runtime in (first, second):
            runtime.send(NEXT)
            assert runtime.reply()[0] == 200
        first.send(post("/2018-06-01/runtime/invocation/req-1/response", b"[1]"))
        assert first.reply()[0] == 202  # accepted at once; upstream holds its own reply
        armed.set()
        first.send(NEXT)  # held by the hook
        started = time.monotonic()
        second.send(post("/2018-06-01/runtime/invocation/req-2/response", b"[2]"))
        assert second.reply()[0] == 202
        assert time.monotonic() - started < TIMEOUT / 2
        gate.set()
        release.set()
        assert first.reply()[0] == 200  # its next went on once the hook let go
        first.close()
        second.close()

    run_scenario(scenario, Gate(), respond)


def test_a_runtime_that_resets_right_after_its_response_leaves_no_reply_owed() -> None:
    """The 202 accepted at once cannot be written (the runtime reset its connection): the
    response still reaches upstream, its reply is read, and a next on a new connection is
    answered (it used to wait for that reply forever)."""

    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        for _ in range(5):  # the reset races the proxy's write: several tries
            client = RawClient(proxy.address)
            client.send(NEXT)
            assert client.reply()[0] == 200
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.send(post(RESPONSE, b"[1]"))
            client.sock.close()  # a reset, not a FIN
            assert wait_until(lambda: proxy.owed_replies == 0)
            other = RawClient(proxy.address)
            other.send(NEXT)
            assert other.reply()[0] == 200
            other.close()
        assert sum(seen.head.method == "POST" for seen in upstream.requests) == 5

    run_scenario(scenario)


def test_a_scanned_field_line_without_a_colon_is_refused_as_the_codec_refuses_it() -> None:
    def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = RawClient(proxy.address)
        client.send(NEXT.replace(b"Host: api\r\n", b"Host: api\r\nUser-Agent: x\r\n"))
        assert client.reply()[0] == 200  # the name is now known to the scan
        client.send(NEXT.replace(b"Host: api\r\n", b"Host: api\r\nUser-Agent\r\n"))
        assert client.reply()[0] == 400
        assert client.at_eof()
        client.close()

    run_scenario(scenario)


def test_settle_waits_for_a_response_still_queued_in_the_listener() -> None:
    """A runtime that connects, posts its response and exits at once leaves a connection that
    no thread has accepted yet (the listener defers accept() until data arrives), or one that
    a thread accepted but has not counted: settle() waits for both, or closing the proxy right
    after would lose the response."""
    with fake_runtime_api() as upstream:
        proxy = RuntimeApiProxy(upstream.address)
        proxy.start()
        try:
            with proxy._lock:  # the accepting thread stops between accept() and counting
                first = RawClient(proxy.address)
                first.send(NEXT[:20])
                first.close()
                assert wait_until(lambda: not proxy._queued())  # that thread took it
                last = RawClient(proxy.address)
                last.send(post(RESPONSE, b'{"done": true}'))
                last.close()  # and exits: nobody reads the reply
                assert wait_until(proxy._queued)  # no thread is free to take it
            assert proxy.settle(TIMEOUT)
        finally:
            proxy.close()
        assert [bytes(seen.body) for seen in upstream.requests] == [b'{"done": true}']
