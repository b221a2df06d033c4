"""examples/python/app.py works as its docstring says."""

from __future__ import annotations

import http.client
import json
import re
import time

from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "python"


def test_example_answers_before_its_after_response_task() -> None:
    args = ("--code-dir", str(EXAMPLE), "--env", "AWS_LAMBDA_LOG_LEVEL=INFO", "app.handler")
    with running_serve(*args) as serve:
        serve.invoke("function", b"{}")  # cold start
        started = time.monotonic()
        status, _, body = serve.invoke("function", '{"name": "Zoë"}'.encode())
        elapsed = time.monotonic() - started
        assert serve.wait_for_output(r"audit recorded for Zoë", timeout=10)
    assert (status, json.loads(body)) == (200, {"message": "Hello, Zoë!"})
    assert elapsed < 0.2  # the task sleeps 0.2 s after the response


def test_example_async_handler() -> None:
    with running_serve("--code-dir", str(EXAMPLE), "app.async_handler") as serve:
        status, _, body = serve.invoke("function", b'{"name": "B"}')
    assert (status, json.loads(body)) == (200, {"message": "Hello, B!", "async": True})


def test_example_reads_the_name_from_its_function_url_query() -> None:
    args = ("--code-dir", str(EXAMPLE), "--url-port", "0", "app.handler")
    with running_serve(*args) as serve:
        assert serve.wait_for_output(r"function URL of function: ", timeout=10)
        match = re.search(r"function URL of function: http://127\.0\.0\.1:(\d+)/", serve.output())
        assert match is not None
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        connection.request("GET", "/any/path?name=url")
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    assert (response.status, body) == (200, {"message": "Hello, url!"})
