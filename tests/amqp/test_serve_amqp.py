"""``lambdakit serve --amqp``: the daemon's clients, unchanged, against lambdakit instances.

The client is :class:`tests.amqp.rpc_client.RpcClient`, written as the Lambda Runtime API
Daemon's echo client speaks: persistent requests, a correlation id each, a broker-named reply
queue, publisher confirms.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.amqp.broker import require_broker
from tests.amqp.rpc_client import RpcClient, counts
from tests.amqp.workers import unique, workers, write_config
from tests.serving import REPO, running_serve


@pytest.fixture(scope="module")
def url() -> str:
    return require_broker()


@pytest.fixture
def client(url: str) -> Iterator[RpcClient]:
    with RpcClient(url) as rpc:
        yield rpc


def test_a_daemon_style_client_drives_two_instances(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    functions = {echo: {"handler": "app.echo", "concurrency": 2}}
    with workers(tmp_path, url, functions, 2):
        sent = [
            client.publish(echo, json.dumps({"n": n, "sleep": 0.05}).encode()) for n in range(40)
        ]
        replies = client.collect(sent, timeout=60)
    total, replied, duplicates = counts(sent, replies)
    print(f"sent={total} replied={replied} duplicates={duplicates}")
    assert replied == total == 40
    instances = set()
    for n, correlation_id in enumerate(sent):
        reply = replies[correlation_id][0]
        body = json.loads(reply.body)
        assert body["event"] == {"n": n, "sleep": 0.05}  # each answer to its own request
        assert body["request_id"] == correlation_id  # the correlation id is the request id
        assert reply.headers["x-amzn-RequestId"] == correlation_id
        assert "X-Amz-Function-Error" not in reply.headers
        instances.add(body["instance"])
    assert instances == {"w0", "w1"}  # both instances got work


def test_function_errors_timeouts_and_crashes_are_flagged(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    names = {kind: unique(kind) for kind in ("fail", "slow", "crash")}
    functions: dict[str, dict[str, object]] = {
        names["fail"]: {"handler": "app.fail"},
        names["slow"]: {"handler": "app.echo", "timeout": 1},
        names["crash"]: {"handler": "app.crash"},
    }
    with workers(tmp_path, url, functions) as (worker,):
        failed = client.call(names["fail"], b"{}")
        timed_out = client.call(names["slow"], b'{"sleep": 5}')
        crashed = client.call(names["crash"], b"{}")
        after = client.call(names["slow"], b'{"after": "timeout"}')
        assert worker.process.poll() is None
    for reply, error_type in (
        (failed, "ValueError"),
        (timed_out, "Sandbox.Timedout"),
        (crashed, "Runtime.ExitError"),
    ):
        assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(reply.body)["errorType"] == error_type
    assert "Task timed out after 1.00 seconds" in json.loads(timed_out.body)["errorMessage"]
    assert "X-Amz-Function-Error" not in after.headers  # a new environment took over
    assert json.loads(after.body)["event"] == {"after": "timeout"}


def test_client_context_and_trace_id_reach_the_function_and_bad_headers_are_refused(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    context = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}}).encode()).decode()
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    with workers(tmp_path, url, {echo: {"handler": "app.echo"}}):
        good = client.call(
            echo, b"{}", headers={"X-Amz-Client-Context": context, "X-Amzn-Trace-Id": trace}
        )
        wrong_type = client.call(echo, b"{}", headers={"X-Amz-Client-Context": 42})
        not_base64 = client.call(echo, b"{}", headers={"X-Amz-Client-Context": "%%"})
        still_serving = client.call(echo, b'{"still": true}')
    body = json.loads(good.body)
    assert body["client_context"] == {"tenant": "t1"}
    assert body["trace_id"] == trace
    for refused in (wrong_type, not_base64):
        assert refused.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
        assert "X-Amz-Function-Error" not in refused.headers
    assert "must be a string, not an integer" in json.loads(wrong_type.body)["message"]
    assert json.loads(still_serving.body)["event"] == {"still": True}


def test_no_broker_setting_reaches_the_function(url: str, tmp_path: Path) -> None:
    secret = "s3cret-broker-pw"
    env_fn = unique("env")
    broker = url.split("@", 1)[-1]  # host:port/vhost of the machine's broker
    # The service gets the password three ways: in --amqp, in AMQP_URI and in AMQP_PASSWORD.
    # The machine's broker accepts guest/guest only, so --amqp carries those credentials.
    service_env = {
        "AMQP_URI": f"amqp://guest:{secret}@{broker}",
        "AMQP_USERNAME": "guest",
        "AMQP_PASSWORD": secret,
    }
    with (
        workers(tmp_path, url, {env_fn: {"handler": "app.environment"}}, env=service_env) as (
            worker,
        ),
        RpcClient(url) as rpc,
    ):
        environment = json.loads(rpc.call(env_fn, b"{}").body)
        log = worker.output() + worker.errors()
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == env_fn  # it really is the function's
    for name in ("AMQP_URI", "AMQP_USERNAME", "AMQP_PASSWORD"):
        assert name not in environment
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for value in environment.values():
        assert secret not in value and broker not in value
        assert f":{password}@" not in value
    assert f":{password}@" not in log and secret not in log  # never logged either


def test_a_broker_that_cannot_be_reached_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdakit",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
            "--code-dir",
            str(REPO / "tests" / "amqp" / "functions"),
            "--amqp",
            "amqp://user:hunter2@127.0.0.1:1/?connection_attempts=2&retry_delay=0.1",
            "app.echo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    problem = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(problem) == 1, result.stderr
    assert (
        "cannot reach the broker at amqp://user:***@127.0.0.1:1/ after 2 attempts" in (problem[0])
    )
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_prefetch_follows_concurrency_and_the_timeout_starts_when_the_invocation_does(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    slow = unique("slow")
    # One environment, 1.5 s timeout, 0.6 s per request: the fourth request waits 1.8 s, which
    # would time it out if its clock started when the message arrived (as in the daemon).
    functions = {slow: {"handler": "app.echo", "concurrency": 1, "timeout": 1.5}}
    with workers(tmp_path, url, functions):
        sent = [client.publish(slow, b'{"sleep": 0.6}') for _ in range(4)]
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            declared = connection.channel().queue_declare(slow, passive=True)
            queued = declared.method.message_count
            replies = client.collect(sent, timeout=30)
        finally:
            connection.close()
    # Prefetch 1 = concurrency 1: the broker keeps 3 of the 4 for any instance to take.
    assert queued >= 2
    assert all(len(replies.get(c, [])) == 1 for c in sent)
    for correlation_id in sent:
        reply = replies[correlation_id][0]
        assert "X-Amz-Function-Error" not in reply.headers, reply.body
        # 1.5 s less the 0.6 s sleep, for each: its clock started when it started
        assert json.loads(reply.body)["remaining_ms"] > 600


def test_a_queue_declared_otherwise_is_consumed_as_it_is(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    functions = {echo: {"handler": "app.echo"}}
    with workers(tmp_path / "a", url, functions, 1, "--amqp-queue", "quorum") as (first,):
        # The second worker asks for the daemon's transient queue: the broker refuses that
        # declaration (406), and the worker consumes the quorum queue the first one made.
        with workers(tmp_path / "b", url, functions, 1) as (second,):
            replies = [json.loads(client.call(echo, b'{"sleep": 0.2}').body) for _ in range(2)]
            sent = [client.publish(echo, b'{"sleep": 0.3}') for _ in range(6)]
            more = client.collect(sent, timeout=30)
            warning = second.errors()
        assert first.process.poll() is None
    assert "exists with other settings than transient" in warning
    assert all(body["event"]["sleep"] for body in replies)
    assert all(len(more[c]) == 1 for c in sent)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_delete(echo)  # a quorum queue outlives its consumers
    finally:
        connection.close()


def test_a_deleted_queue_is_declared_and_consumed_again(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    with workers(tmp_path, url, {echo: {"handler": "app.echo"}}) as (worker,):
        assert json.loads(client.call(echo, b'{"before": 1}').body)["event"] == {"before": 1}
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            connection.channel().queue_delete(echo)  # the broker cancels the worker's consumer
        finally:
            connection.close()
        deadline = 20.0
        reply = None
        while deadline > 0 and reply is None:
            try:  # unroutable until the worker has declared the queue again
                reply = client.call(echo, b'{"after": 1}', timeout=1.0)
            except TimeoutError:
                deadline -= 1.0
        assert reply is not None, worker.errors()
        assert json.loads(reply.body)["event"] == {"after": 1}
        assert "consuming queue" in worker.errors() and "again" in worker.errors()


def test_amqp_uri_alone_turns_the_door_on_with_credentials_from_the_environment(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    env_fn = unique("env")
    config = write_config(tmp_path, "w0", {env_fn: {"handler": "app.environment"}})
    host = url.split("@", 1)[-1]
    service_env = {
        "AMQP_URI": f"amqp://{host}?connection_attempts=3&retry_delay=0.5&heartbeat=5",
        "AMQP_USERNAME": "guest",
        "AMQP_PASSWORD": "guest",
    }
    with running_serve("--config", str(config), env=service_env) as worker:
        environment = json.loads(client.call(env_fn, b"{}").body)
        banner = worker.output()
    assert f"consuming queues {env_fn} on amqp://guest:***@" in banner
    assert not {"AMQP_URI", "AMQP_USERNAME", "AMQP_PASSWORD"} & set(environment)


class _NotUtf8(str):
    """A header value pika sends as a long string whose bytes are not UTF-8."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe not utf-8"


def test_poison_messages_are_answered_once_and_never_cost_the_connection(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    context = base64.b64encode(json.dumps({"custom": {"k": "€"}}).encode()).decode()
    with workers(tmp_path, url, {echo: {"handler": "app.echo"}}) as (worker,):
        # A header that cannot be echoed back as it came: the reply goes out without it.
        odd_header = client.call(echo, b'{"odd": "header"}', headers={"X-Note": _NotUtf8("x")})
        # A timestamp outside any calendar, and a correlation id that is not UTF-8.
        channel = client._channel
        for properties in (
            pika.BasicProperties(
                correlation_id="ts-1", reply_to=client.reply_queue, timestamp=2**63 - 1
            ),
            pika.BasicProperties(correlation_id=b"\xff\xfe", reply_to=client.reply_queue),
        ):
            channel.basic_publish("", echo, b'{"poison": true}', properties)
        replies = client.collect(["ts-1", "\ufffd\ufffd"], timeout=20)
        # Headers that would break the Runtime API's head are not passed to the function.
        injected = client.call(
            echo,
            b"{}",
            headers={"X-Amzn-Trace-Id": "Root=1-a-b\r\nLambda-Runtime-Deadline-Ms: 1"},
        )
        not_ascii = client.call(echo, b"{}", headers={"X-Amzn-Trace-Id": "Root=1-€"})
        with_context = client.call(echo, b"{}", headers={"X-Amz-Client-Context": context})
        after = client.call(echo, b'{"after": true}')
    log, diagnostics = worker.output(), worker.errors()  # all of it, now that it stopped
    assert json.loads(odd_header.body)["event"] == {"odd": "header"}
    assert "X-Note" not in odd_header.headers or odd_header.headers["X-Note"] != "x"
    assert json.loads(replies["ts-1"][0].body)["event"] == {"poison": True}
    assert json.loads(replies["\ufffd\ufffd"][0].body)["event"] == {"poison": True}
    for reply in (injected, not_ascii):
        body = json.loads(reply.body)
        assert "Lambda-Runtime" not in body["trace_id"] and "€" not in body["trace_id"]
        assert body["trace_id"].startswith("Root=1-") and body["remaining_ms"] > 1000
    assert json.loads(with_context.body)["client_context"] == {"k": "€"}
    assert json.loads(after.body)["event"] == {"after": True}
    assert "lost the connection" not in diagnostics
    assert log.count("START RequestId") == 7  # each request ran once


def test_metrics_count_what_the_door_did_with_each_message(
    url: str, client: RpcClient, tmp_path: Path
) -> None:
    echo = unique("echo")
    with workers(tmp_path, url, {echo: {"handler": "app.echo"}}) as (worker,):
        client.call(echo, b'{"n": 1}')
        client.call(echo, b"{}", headers={"X-Amz-Client-Context": 42})  # refused
        client.call(echo, b'{"n": 2}')
        deadline = time.monotonic() + 10
        while True:  # the door counts a reply once the broker confirmed it, after it left
            connection = worker.connection()
            connection.request("GET", "/metrics")
            scraped = connection.getresponse().read().decode()
            connection.close()
            figures = {
                sample.labels["outcome"]: sample.value
                for family in text_string_to_metric_families(scraped)
                for sample in family.samples
                if sample.name == "lambdakit_amqp_messages_total"
                and sample.labels["function"] == echo
            }
            if figures.get("replied") == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert figures == {"run": 2, "replied": 2, "refused": 1}
