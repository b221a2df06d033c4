"""The test infrastructure itself: the daemon-style RPC client and the private broker."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pytest

from tests.amqp.broker import PrivateBroker, require_broker
from tests.amqp.rpc_client import RpcClient, counts


@contextmanager
def echo_consumer(url: str, queue: str) -> Iterator[list[Any]]:
    """A pika consumer thread that answers each request with its body; yields what it saw.

    A request with the header ``stray`` is answered twice, and once more under a correlation id
    nobody sent.
    """
    seen: list[Any] = []
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def on_request(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        seen.append(properties)
        reply = pika.BasicProperties(correlation_id=properties.correlation_id)
        channel.basic_publish("", properties.reply_to, body, reply)
        if (properties.headers or {}).get("stray"):
            channel.basic_publish("", properties.reply_to, body, reply)
            stray = pika.BasicProperties(correlation_id=f"stray-{properties.correlation_id}")
            channel.basic_publish("", properties.reply_to, b"{}", stray)
        channel.basic_ack(method.delivery_tag)

    def run() -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(url))
            channel = connection.channel()
            channel.queue_declare(queue, exclusive=True)
            channel.basic_consume(queue, on_request)
            ready.set()
            while not stop.is_set():
                connection.process_data_events(time_limit=0.05)
            connection.close()
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="echo-consumer")
    thread.start()
    try:
        assert ready.wait(10) and not failure, failure
        yield seen
    finally:
        stop.set()
        thread.join(10)
    assert not failure, failure


def test_rpc_client_round_trips_with_correlation_and_keeps_every_reply() -> None:
    url = require_broker()
    queue = f"lk-test-echo-{uuid.uuid4().hex[:8]}"
    with echo_consumer(url, queue) as seen, RpcClient(url) as client:
        sent = [client.publish(queue, json.dumps({"n": n}).encode()) for n in range(50)]
        replies = client.collect(sent, timeout=10)
        assert counts(sent, replies) == (50, 50, 0)
        for n, correlation_id in enumerate(sent):
            (reply,) = replies[correlation_id]
            assert reply.correlation_id == correlation_id
            assert json.loads(reply.body) == {"n": n}

        # The daemon's wire contract, as the consumer saw it.
        request = seen[0]
        assert (request.content_type, request.delivery_mode) == ("application/json", 2)
        assert request.reply_to == client.reply_queue and client.reply_queue.startswith("amq.gen-")
        assert uuid.UUID(request.correlation_id).version == 4

        # Two replies to one id, and one to an id nobody sent: all kept, the extra one counted.
        reply = client.call(queue, b'{"twice": 1}', headers={"stray": True})
        stray = f"stray-{reply.correlation_id}"
        replies = client.collect([reply.correlation_id, stray], timeout=10)
        assert seen[-1].headers == {"stray": True}
        assert counts([reply.correlation_id], replies) == (1, 1, 1)
        assert [r.body for r in replies[stray]] == [b"{}"]
        assert set(sent) | {reply.correlation_id, stray} == replies.keys()

        with pytest.raises(TimeoutError):
            client.call(f"{queue}-nobody", b"{}", timeout=0.3)


def _epmd_names(port: int = 4369) -> str:
    """The node names the machine's epmd knows (its NAMES request); empty without one."""
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as sock:
            sock.sendall(b"\x00\x01n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return ""
    return data[4:].decode(errors="replace")


def _machine_broker_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), 2):
            return True
    except OSError:
        return False


# The slow one (about 13 s): a private node started, restarted and stopped.
@pytest.mark.timeout(100)
def test_slow_private_broker_keeps_persistent_messages_across_a_restart() -> None:
    machine_broker = _machine_broker_answers()
    queue = "lk-test-durable"
    with PrivateBroker() as broker:
        assert broker.url != "amqp://guest:guest@127.0.0.1:5672/"
        running = broker.processes()
        assert len(running) >= 3  # the wrapper, beam.smp, erl_child_setup, its epmd...
        assert broker.node.split("@")[0] not in _epmd_names()  # not the machine's epmd

        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True)
        persistent = pika.BasicProperties(delivery_mode=2, correlation_id="kept")
        channel.basic_publish("", queue, b'{"survives": true}', persistent)
        connection.close()

        broker.restart()
        assert not set(running) & set(broker.processes())  # all new processes

        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        method, properties, body = connection.channel().basic_get(queue, auto_ack=True)
        connection.close()
        assert method is not None, "the persistent message did not survive the restart"
        assert (body, properties.correlation_id) == (b'{"survives": true}', "kept")

    assert broker.processes() == []
    assert not broker.directory.exists()
    assert _machine_broker_answers() == machine_broker  # the machine's broker, untouched
