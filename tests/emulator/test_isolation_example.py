"""examples/isolation runs as its README says."""

from __future__ import annotations

import json
import signal

from tests.serving import REPO, process_alive, running_serve

CONFIG = REPO / "examples" / "isolation" / "lambdakit.toml"


def test_the_prober_is_refused_and_the_leaver_leaves_nothing() -> None:
    with running_serve("--config", str(CONFIG)) as serve:
        assert serve.invoke("victim", b"{}")[0] == 200
        status, _, body = serve.invoke("prober", b'{"victim": "victim"}')
        probe = json.loads(body)
        assert status == 200, probe
        assert probe["runtime_api"].startswith("127.0.0.1:"), probe
        assert probe["next"].startswith("refused: "), probe
        assert serve.wait_for_errors("victim#1: refused a connection to its Runtime API")
        status, _, body = serve.invoke("leaver", b"{}")
        left = json.loads(body)["left"]
        assert status == 200 and process_alive(left)
        assert serve.stop(signal.SIGTERM) == 0
    assert not process_alive(left)
