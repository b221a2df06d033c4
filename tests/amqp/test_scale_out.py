"""No invocation lost: an instance killed under load, and a broker restarted under load.

Each test prints its counts (sent, replied, duplicates); delivery is at least once, so
duplicates are allowed and counted, a request without a reply is not.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.amqp.broker import PrivateBroker, require_broker
from tests.amqp.rpc_client import RpcClient, counts
from tests.amqp.workers import running_gateway, unique, workers
from tests.serving import lambda_client


def test_sigkill_of_one_instance_under_load_loses_no_request(tmp_path: Path) -> None:
    url = require_broker()
    echo = unique("echo")
    functions = {echo: {"handler": "app.echo", "concurrency": 4}}
    with workers(tmp_path, url, functions, 2) as (doomed, survivor), RpcClient(url) as client:
        sent = [
            client.publish(echo, json.dumps({"n": n, "sleep": 0.05}).encode()) for n in range(200)
        ]
        client.collect(sent[:40], timeout=60)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        replies = client.collect(sent, timeout=90)  # every reply since the start
        assert survivor.process.poll() is None
    total, replied, duplicates = counts(sent, replies)
    print(f"SIGKILL under load: sent={total} replied={replied} duplicates={duplicates}")
    assert replied == total == 200
    by_instance = {json.loads(replies[c][0].body)["instance"] for c in sent}
    assert by_instance == {"w0", "w1"}


@pytest.mark.timeout(240)
def test_a_broker_restart_under_load_loses_no_request_on_durable_queues(tmp_path: Path) -> None:
    slow = unique("slow")
    functions = {slow: {"handler": "app.echo", "concurrency": 2, "timeout": 30}}
    with PrivateBroker() as broker:
        url = broker.url + ("&" if "?" in broker.url else "?") + "retry_delay=0.5"
        with workers(tmp_path, url, functions, 1, "--amqp-queue", "durable") as (worker,):
            with RpcClient(broker.url, durable_reply_queue=unique("replies")) as client:
                sent = [
                    client.publish(slow, json.dumps({"n": n, "sleep": 0.2}).encode())
                    for n in range(30)
                ]
                client.collect(sent[:4], timeout=30)
                broker.restart()
                client.reconnect()
                replies = client.collect(sent, timeout=120)
            assert worker.process.poll() is None  # the worker lived through it
            reconnected = worker.errors()
    total, replied, duplicates = counts(sent, replies)
    print(f"broker restart: sent={total} replied={replied} duplicates={duplicates}")
    assert replied == total == 30
    assert "lost the connection to the broker" in reconnected
    assert "reconnected to the broker" in reconnected


def test_sigterm_finishes_the_work_in_flight_and_leaves_the_rest_to_others(
    tmp_path: Path,
) -> None:
    url = require_broker()
    slow = unique("slow")
    functions = {slow: {"handler": "app.echo", "concurrency": 1}}
    with workers(tmp_path, url, functions, 2) as (stopping, staying), RpcClient(url) as client:
        sent = [client.publish(slow, json.dumps({"n": n, "sleep": 0.5}).encode()) for n in range(8)]
        assert stopping.wait_for_output(r"START RequestId", timeout=30)
        assert stopping.stop(signal.SIGTERM) == 0
        replies = client.collect(sent, timeout=60)
        assert staying.process.poll() is None
    total, replied, duplicates = counts(sent, replies)
    print(f"SIGTERM: sent={total} replied={replied} duplicates={duplicates}")
    assert (replied, duplicates) == (total, 0)
    ran_by = [json.loads(replies[c][0].body)["instance"] for c in sent]
    assert "w0" in ran_by and "w1" in ran_by  # the stopping one finished what it had started


@pytest.mark.timeout(240)
def test_a_gateway_lives_through_a_broker_restart(tmp_path: Path) -> None:
    slow = unique("slow")
    functions = {slow: {"handler": "app.echo", "timeout": 30}}
    with PrivateBroker() as broker:
        url = broker.url + "?retry_delay=0.5"
        with (
            workers(tmp_path, url, functions, 1, "--amqp-queue", "durable") as (worker,),
            running_gateway("--amqp", url) as gateway,
        ):
            client = lambda_client(gateway)
            outcome: dict[str, object] = {}

            def waiting_caller() -> None:
                try:
                    outcome["response"] = client.invoke(FunctionName=slow, Payload=b'{"sleep": 4}')
                except Exception as exc:
                    outcome["error"] = exc

            caller = threading.Thread(target=waiting_caller)
            caller.start()
            assert worker.wait_for_output(r"START RequestId", timeout=30)
            broker.restart()
            caller.join(60)
            # The caller waiting through the restart is told, not left hanging.
            error = outcome.get("error")
            assert error is not None and "ServiceException" in type(error).__name__, outcome
            deadline = time.monotonic() + 60
            while True:  # the gateway and the worker reconnect; then invocations work again
                try:
                    response = client.invoke(FunctionName=slow, Payload=b'{"after": 1}')
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            assert json.loads(response["Payload"].read())["event"] == {"after": 1}
            assert gateway.process.poll() is None and worker.process.poll() is None
            assert "reconnected to the broker" in gateway.errors()
