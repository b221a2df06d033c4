"""The post-runner in front of a Managed Instances runtime: several workers, one proxy.

Each of lambdakit's runtime's async workers keeps its own connection to the proxy, so results
and ``next`` calls of different invocations cross in it, while responses are accepted at once
(see ``RuntimeConnection.forward``).  Every caller must still get its own answer, and the
command must run after each response with that invocation's request id.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.postrun.support import POST_RUN, env_flags
from tests.serving import REPO, running_serve

FUNCTIONS = REPO / "tests" / "runtime" / "functions"
WORKERS = 4
CALLS = 12


def test_several_workers_behind_one_post_runner_each_get_their_own_answer(tmp_path: Path) -> None:
    command = 'echo "$POST_RUNNER_REQUEST_ID" >> "$OUT/ran"'
    flags = (
        "--function-name", "f", "--code-dir", str(FUNCTIONS), "--handler", "lmi.asleepy",
        "--max-concurrency", str(WORKERS), "--concurrency", "1", "--timeout", "30",
        *env_flags(COMMAND=command, MODE="AfterResponse", OUT=str(tmp_path)),
        "--", *POST_RUN, "--", sys.executable, "-m", "lambdakit.runtime",
    )  # fmt: skip
    with running_serve(*flags) as serve, ThreadPoolExecutor(CALLS) as pool:

        def call(i: int) -> tuple[int, dict[str, object], str]:
            payload = json.dumps({"i": i, "sleep": 0.2}).encode()
            status, headers, body = serve.invoke("f", payload)
            assert status == 200, body
            return i, json.loads(body), headers["x-amzn-requestid"]

        for _ in range(2):  # the second round finds every worker warm
            answers = list(pool.map(call, range(CALLS)))
        assert all(answer["i"] == i for i, answer, _ in answers)  # each its own
        assert len({answer["request_id"] for _, answer, _ in answers}) == CALLS
        assert all(answer["request_id"] == rid for _, answer, rid in answers)
    ran = (tmp_path / "ran").read_text().split()
    for _, _, request_id in answers:
        assert request_id in ran  # the command ran after each, with its request id
