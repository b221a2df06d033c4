"""RuntimeApiProxy on real loopback sockets, between a raw client and a fake Runtime API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lambdakit.proxy import Call, Forward, Hooks, Invocation, Reply, RuntimeApiProxy
from tests.proxy.support import OK_202, FakeRuntimeApi, RawClient, Responder, Seen, event_reply

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n"


def post(path: str, body: bytes, *extra: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    head = f"POST {path} HTTP/1.1\r\nHost: api\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def answer_next_and_accept(seen: Seen) -> bytes:
    if seen.head.method == "GET":
        return event_reply("req-1", b'{"n": 1}')
    return OK_202


Scenario = Callable[[RuntimeApiProxy, FakeRuntimeApi], Awaitable[None]]


def run_scenario(
    scenario: Scenario, hooks: Hooks | None = None, responder: Responder = answer_next_and_accept
) -> None:
    async def main() -> None:
        upstream = FakeRuntimeApi(responder)
        proxy = RuntimeApiProxy(await upstream.start(), hooks)
        await proxy.start()
        try:
            await asyncio.wait_for(scenario(proxy, upstream), 20)
        finally:
            await proxy.close()
            await upstream.close()

    asyncio.run(main())


def test_unhooked_calls_pass_through_unchanged_on_one_keep_alive_upstream_connection() -> None:
    async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        for _ in range(3):  # curl style: a new runtime connection per call
            client = await RawClient.connect(proxy.address)
            await client.send(NEXT)
            status, headers, body = await client.reply()
            assert (status, body) == (200, b'{"n": 1}')
            assert headers["lambda-runtime-aws-request-id"] == "req-1"
            await client.send(post("/2018-06-01/runtime/invocation/req-1/response", b"[1]"))
            assert (await client.reply())[0] == 202
            await client.close()
        assert upstream.connections == 1
        assert [s.head.raw for s in upstream.requests[::2]] == [NEXT] * 3
        assert bytes(upstream.requests[1].body) == b"[1]"

    run_scenario(scenario)


class Rewriter(Hooks):
    """Rewrites events, counts responses, refuses errors without forwarding them."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []

    async def on_next(self, call: Call, forward: Forward) -> Reply:
        reply = await forward(call)
        invocation = Invocation.from_reply(reply)
        assert invocation is not None
        self.invocations.append(invocation)
        return reply.with_body(b'{"rewritten": true}')

    async def on_response(self, call: Call, forward: Forward) -> Reply:
        assert isinstance(call.body, bytes)
        return await forward(call.with_body(call.body.upper()))

    async def on_error(self, call: Call, forward: Forward) -> Reply:
        return Reply.json(403, {"errorType": "Refused", "errorMessage": call.request_id})


def test_hooks_inspect_rewrite_and_answer_calls() -> None:
    hooks = Rewriter()

    async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = await RawClient.connect(proxy.address)
        await client.send(NEXT)
        status, headers, body = await client.reply()
        assert (status, body) == (200, b'{"rewritten": true}')
        assert headers["content-length"] == str(len(body))
        assert hooks.invocations[0].request_id == "req-1"
        assert hooks.invocations[0].event == b'{"n": 1}'
        assert hooks.invocations[0].function_arn.endswith(":function:f")
        await client.send(post("/2018-06-01/runtime/invocation/req-1/response", b"abc"))
        assert (await client.reply())[0] == 202
        await client.send(post("/2018-06-01/runtime/invocation/req-1/error", b"{}"))
        status, _, body = await client.reply()
        assert status == 403 and b'"req-1"' in body
        await client.close()
        assert [s.head.target.rsplit("/", 1)[-1] for s in upstream.requests] == [
            "next",
            "response",
        ]
        assert bytes(upstream.requests[1].body) == b"ABC"

    run_scenario(scenario, hooks)


class Broken(Hooks):
    async def on_next(self, call: Call, forward: Forward) -> Reply:
        raise RuntimeError("hook bug")


def test_a_failing_hook_gives_the_runtime_a_502_not_a_hang() -> None:
    async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = await RawClient.connect(proxy.address)
        await client.send(NEXT)
        status, _, body = await client.reply()
        assert status == 502 and b"hook bug" in body
        await client.close()

    run_scenario(scenario, Broken())


def test_a_streamed_response_flows_through_unbuffered_with_its_trailers() -> None:
    class Passing(Hooks):  # the hooked path must stream too
        async def on_response(self, call: Call, forward: Forward) -> Reply:
            assert call.streaming
            return await forward(call)

    head = (
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: api\r\n"
        b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: Lambda-Runtime-Function-Error-Type\r\n\r\n"
    )

    for hooks in (None, Passing()):

        async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
            client = await RawClient.connect(proxy.address)
            await client.send(head + b"6\r\nfirst \r\n")
            # Upstream gets the first chunk while the runtime has not sent the rest.
            await asyncio.wait_for(upstream.first_chunk.wait(), 5)
            seen = upstream.requests[0]
            assert bytes(seen.body) == b"first " and not seen.complete.is_set()
            await client.send(b"6\r\nsecond\r\n0\r\n")
            await client.send(b"Lambda-Runtime-Function-Error-Type: X.Y\r\n\r\n")
            assert (await client.reply())[0] == 202
            assert bytes(seen.body) == b"first second"
            assert seen.trailers == (("lambda-runtime-function-error-type", "X.Y"),)
            await client.close()

        run_scenario(scenario, hooks)


def test_a_runtime_hanging_up_during_next_closes_the_upstream_connection() -> None:
    async def hold(seen: Seen) -> bytes | None:
        return None  # never answer: a long poll

    for hooks in (None, Rewriter()):

        async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
            client = await RawClient.connect(proxy.address)
            await client.send(NEXT)
            await asyncio.wait_for(upstream.got_request.wait(), 5)
            await client.close()
            await asyncio.wait_for(upstream.closed.wait(), 5)

        run_scenario(scenario, hooks, hold)


def test_expect_100_continue_is_answered_by_the_proxy() -> None:
    async def scenario(proxy: RuntimeApiProxy, upstream: FakeRuntimeApi) -> None:
        client = await RawClient.connect(proxy.address)
        head = post("/2018-06-01/runtime/invocation/req-1/response", b"", "Expect: 100-continue")
        await client.send(head.replace(b"Content-Length: 0", b"Content-Length: 4"))
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100")
        await client.send(b"body")
        assert (await client.reply())[0] == 202
        assert bytes(upstream.requests[0].body) == b"body"
        await client.close()

    run_scenario(scenario)
