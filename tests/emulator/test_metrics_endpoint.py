"""``GET /metrics`` of a real ``lambdakit serve``, read with prometheus_client's own parser."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.serving import Serve, bash_function, running_serve


def _scrape(serve: Serve) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    connection = serve.connection()
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/plain; version=")
    finally:
        connection.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_metrics_count_the_invocations_made() -> None:
    args = bash_function(
        "--function-name", "f", "--concurrency", "1", handler="function.echo_event"
    )
    with running_serve(*args) as s:
        for n in range(3):
            s.invoke("f", f'{{"n": {n}}}'.encode())
        deadline = time.monotonic() + 10
        while True:  # the last invocation ends when its runtime asks for the next event
            figures = _scrape(s)
            if figures.get(("lambdakit_invocations_total", (("function", "f"),))) == 3:
                break
            assert time.monotonic() < deadline, figures
            time.sleep(0.05)
    f = (("function", "f"),)
    assert figures[("lambdakit_cold_starts_total", f)] == 1
    assert figures[("lambdakit_throttles_total", f)] == 0
    assert (
        figures[("lambdakit_invocation_errors_total", (("function", "f"), ("status", "error")))]
        == 0
    )
    assert figures[("lambdakit_response_seconds_count", f)] == 3
    assert figures[("lambdakit_after_response_seconds_count", f)] == 3
    init = (("function", "f"), ("result", "ok"))
    assert figures[("lambdakit_init_duration_seconds_count", init)] == 1
    assert figures[("lambdakit_event_queue_depth", f)] == 0
    environments = {
        dict(labels)["state"]: value
        for (name, labels), value in figures.items()
        if name == "lambdakit_environments"
    }
    assert sum(environments.values()) == 1 and environments["busy"] == 0


def test_function_errors_are_counted_by_status_and_only_get_is_served() -> None:
    args = bash_function("--function-name", "f", "--timeout", "1", handler="function.fail")
    with running_serve(*args) as serve:
        serve.invoke("f")
        serve.invoke("f")
        deadline = time.monotonic() + 10
        key = ("lambdakit_invocation_errors_total", (("function", "f"), ("status", "error")))
        while _scrape(serve).get(key) != 2:
            assert time.monotonic() < deadline, _scrape(serve)
            time.sleep(0.05)
        connection = serve.connection()
        connection.request("POST", "/metrics")
        refused = connection.getresponse()
        refused.read()
        connection.close()
    assert refused.status == 405
