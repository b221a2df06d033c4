"""Property-based tests of a real serve's four APIs, and of a runtime that misbehaves at random.

One ``lambdakit serve`` for the module, two functions: ``echo`` (lambdakit's Python runtime) and
``mb``, whose runtime (tests/fixtures/runtimes/misbehaving) makes the Runtime, Extensions and
Telemetry API calls each invocation's event lists, from inside its environment (isolation stays
on), and reports what each got back.  Properties:

- never a 5xx from lambdakit's own code: the Invoke API answers 2xx or a typed 4xx; the
  environment's APIs answer 2xx or a typed 4xx, except the documented 500 ``Runtime.Unknown``
  ("Non-recoverable state. Runtime should exit promptly.") to a runtime whose environment is
  going away (lambdakit/emulator/runtime_api.py, after an accepted ``init/error``);
- every error body is typed: ``errorType`` and ``errorMessage`` on the Runtime, Extensions and
  Telemetry APIs; ``message`` (with ``Type``) on the Invoke API; a platform error to a caller is
  200 with ``X-Amz-Function-Error`` and ``errorType``/``errorMessage``;
- never a crash nor a stuck environment: after every example a normal invocation succeeds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.emulator.http_strategies import (
    KNOWN_HEADERS,
    PATH_CHARS,
    RawRequest,
    bodies,
    bounded,
    exchange,
    header_fields,
    segment,
)
from tests.serving import REPO, Serve, running_serve

CHAOS = REPO / "tests" / "fixtures" / "functions" / "chaos"
MISBEHAVING = REPO / "tests" / "fixtures" / "runtimes" / "misbehaving"
#: The one 500 a runtime may get: its environment is going away (runtime_api.py's _GONE).
GONE = ("Runtime.Unknown", "Non-recoverable state. Runtime should exit promptly.")


class Served:
    def __init__(self, serve: Serve, folder: Path) -> None:
        self.serve = serve
        self.folder = folder
        self.checks = 0

    def still_serving(self, name: str) -> None:
        """A normal invocation of ``name`` succeeds (a fresh environment if need be)."""
        self.checks += 1
        payload = json.dumps({"check": self.checks}).encode()
        status, headers, body = self.serve.invoke(name, payload, timeout=30)
        assert (status, headers.get("x-amz-function-error"), body) == (200, None, payload), (
            name,
            status,
            body,
        )

    def observed(self, request_id: str) -> list[list[Any]]:
        path = self.folder / f"observed-{request_id}.json"
        return list(json.loads(path.read_text())) if path.exists() else []


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="lambdakit-misbehave-") as folder:
        config = Path(folder) / "lambdakit.toml"
        config.write_text(
            f"""
[functions.echo]
runtime = "python"
code_dir = "{CHAOS}"
handler = "app.echo"
timeout = 10
concurrency = 2

[functions.mb]
code_dir = "{MISBEHAVING}"
handler = "none"
timeout = 10
concurrency = 1
env = {{ MISBEHAVE_DIR = "{folder}" }}
"""
        )
        with running_serve("--config", str(config)) as serve:
            yield Served(serve, Path(folder))
            assert "Traceback" not in serve.errors(), serve.errors()


# --- the Invoke API ----------------------------------------------------------------------------
_NAMES = st.one_of(
    st.just("echo"),
    st.sampled_from(["echo", "echo%0A", "echo%0a", "ECHO", "echo:$LATEST", "echo:1", "a" * 200]),
    st.text(PATH_CHARS.replace("/", "").replace("?", ""), min_size=1, max_size=20),
)
_DOORS = st.sampled_from(
    [
        "/2015-03-31/functions/{}/invocations",
        "/2021-11-15/functions/{}/response-streaming-invocations",
        "/2014-11-13/functions/{}/invoke-async",
        "/2015-03-31/functions/{}/invocations/",
        "/2015-03-31/functions/{}",
    ]
)
_QUERIES = st.one_of(
    st.just(""),
    st.sampled_from(["?Qualifier=%24LATEST", "?Qualifier=", "?Qualifier=x%00", "?a=b&a=c"]),
    st.text(PATH_CHARS + "=&", max_size=20).map(lambda q: "?" + q),
)
_invoke_requests = st.builds(
    RawRequest,
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
    target=st.builds(lambda door, name, query: door.format(name) + query, _DOORS, _NAMES, _QUERIES),
    headers=header_fields.map(tuple),
    body=bodies,
    chunked=st.booleans(),
)


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict), body
    return value


@bounded(150)
@given(request=_invoke_requests)
def test_the_invoke_api_answers_any_request_with_2xx_or_a_typed_4xx(
    served: Served, request: RawRequest
) -> None:
    answer = exchange(served.serve.host, served.serve.port, request.pieces())
    assert answer is not None, request
    assert answer.status < 500, (request, answer)
    if answer.status >= 400:
        error = _json_object(answer.body)
        assert isinstance(error.get("message", error.get("Message")), str), (request, answer)
        assert answer.headers.get("x-amzn-errortype") or error.get("Type"), (request, answer)
    elif "x-amz-function-error" in answer.headers:  # the echo function: only platform errors
        error = _json_object(answer.body)
        assert isinstance(error["errorType"], str) and isinstance(error["errorMessage"], str)


def test_the_invoke_api_still_serves_after_the_random_requests(served: Served) -> None:
    served.still_serving("echo")


# --- the environment's APIs, called by a misbehaving runtime ---------------------------------
_ENV_PREFIXES = [
    "/2018-06-01/runtime/invocation/",
    "/2018-06-01/runtime/",
    "/2018-06-01/runtime/init/error",
    "/2018-06-01/ping",
    "/2020-01-01/extension/",
    "/2020-01-01/extension/event/next",
    "/2020-01-01/extension/init/error",
    "/2020-01-01/extension/exit/error",
    "/2022-07-01/telemetry",
    "/2020-08-15/logs",
]
_ENV_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Lambda-Extension-Name",
            "Lambda-Extension-Identifier",
            "Lambda-Runtime-Function-Error-Type",
            "Lambda-Runtime-Function-Response-Mode",
            "Lambda-Extension-Accept-Feature",
            "Content-Type",
            *KNOWN_HEADERS[:3],
        ]
    ),
    st.one_of(
        st.sampled_from(["", "x", "streaming", "Runtime.Fuzz", "accountId", "application/json"]),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    ),
    max_size=3,
)
_JSON_BODIES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            "{}",
            '{"events": ["INVOKE"]}',
            '{"events": 1}',
            '{"schemaVersion": "2022-12-13", "destination": {"protocol": "HTTP", "URI": "x"}}',
            '{"types": ["platform"], "buffering": {"maxItems": -1}}',
            '{"errorType": 1, "errorMessage": null}',
            '{"errorType": "x", "stackTrace": "nope"}',
        ]
    ),
    bodies.map(lambda b: b.decode("latin-1")),
)
_raw_calls = st.tuples(
    st.just("raw"),
    st.tuples(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
        st.builds(
            lambda prefix, rest: prefix + "/".join(rest),
            st.sampled_from(_ENV_PREFIXES),
            st.lists(segment(), max_size=2),
        ),
        _ENV_HEADERS,
        _JSON_BODIES,
    ),
)
_calls = st.one_of(
    st.tuples(st.sampled_from(["next", "exit"]), st.none()),
    st.tuples(
        st.sampled_from(["response", "error", "wrong_response", "wrong_error", "init_error"]),
        _JSON_BODIES,
    ),
    _raw_calls,
)


def _check_observed(observed: list[list[Any]]) -> None:
    """Each answer a runtime got: 2xx, or a typed 4xx, or the documented 500 when going away."""
    gone_allowed = False
    for kind, status, body in observed:
        if not isinstance(status, int):  # the call gave up: only a held GET next may
            assert kind == "next" or (kind == "raw" and status == "TimeoutError"), (kind, status)
            continue
        if kind == "init_error" and status == 202:
            gone_allowed = True
        if status < 300:
            continue
        error = json.loads(body)
        assert isinstance(error.get("errorType"), str), (kind, status, body)
        assert isinstance(error.get("errorMessage"), str), (kind, status, body)
        if status >= 500:
            assert (error["errorType"], error["errorMessage"]) == GONE, (kind, status, body)
            assert gone_allowed, ("a 500 to a runtime whose environment was not going", observed)


@bounded(40)
@given(
    script=st.lists(_calls, max_size=5),
    end=st.sampled_from(["response", "response", "error", "exit"]),
)
def test_a_runtime_making_random_calls_gets_typed_answers_and_its_function_recovers(
    served: Served, script: list[tuple[str, Any]], end: str
) -> None:
    event = json.dumps({"script": script, "end": end}).encode()
    status, headers, body = served.serve.invoke("mb", event, timeout=30)
    assert status == 200, (status, body)
    if "x-amz-function-error" in headers:
        error = _json_object(body)
        assert "observed" in error or isinstance(error.get("errorType"), str), body
    _check_observed(served.observed(headers["x-amzn-requestid"]))
    served.still_serving("mb")


_init_calls = st.one_of(
    st.tuples(st.just("next"), st.none()),
    st.tuples(st.sampled_from(["wrong_response", "wrong_error", "init_error"]), _JSON_BODIES),
    _raw_calls.filter(lambda call: "/register" not in call[1][1]),
)


@bounded(8)
@given(script=st.lists(_init_calls, min_size=1, max_size=3))
def test_a_runtime_misbehaving_during_init_gets_typed_answers_and_its_function_recovers(
    served: Served, script: list[tuple[str, Any]]
) -> None:
    # The next environment of mb runs ``script`` before its first GET next: end the current one.
    served.serve.invoke("mb", b'{"script": [], "end": "exit"}', timeout=30)
    started = set(served.folder.glob("start-*.json"))
    (served.folder / "start.json").write_text(json.dumps(script))
    status, headers, body = served.serve.invoke("mb", b'{"first": true}', timeout=30)
    assert status == 200, (status, body)
    if "x-amz-function-error" in headers:
        # The runtime's own init error as it posted it (JSON), or a typed platform error.
        assert isinstance(json.loads(body), dict), body
    else:
        assert body == b'{"first": true}'
    assert not (served.folder / "start.json").exists()
    fresh = set(served.folder.glob("start-*.json")) - started
    assert len(fresh) <= 1, fresh
    observed = json.loads(fresh.pop().read_text()) if fresh else []
    _check_observed(observed)
    if len(observed) < len(script):
        # The environment was ended, which only an init/error does: the call left unanswered,
        # or one accepted before it (a GET next after that is held until the environment is
        # reaped, never answered).
        accepted = [call for call in observed if call[0] == "init_error" and call[1] == 202]
        assert script[len(observed)][0] == "init_error" or accepted, (script, observed)
    served.still_serving("mb")
