"""examples/api-gateway works as its README says (served on a free port instead of 3000)."""

from __future__ import annotations

import json

from tests.emulator.test_api_gateway import _api_port, request
from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "api-gateway"


def test_the_examples_routes_answer_as_its_readme_says() -> None:
    with running_serve("--config", str(EXAMPLE / "lambdakit.toml"), "--api-port", "0") as serve:
        port = _api_port(serve)
        ada = request(port, "GET", "/users/ada")
        assert (ada.status, ada.json()) == (200, {"id": "ada", "name": "Ada Lovelace"})
        grace = b'{"id": "grace", "name": "Grace Hopper"}'
        created = request(port, "POST", "/users", grace, {"Content-Type": "application/json"})
        assert (created.status, created.headers["location"]) == (201, "/users/grace")
        assert created.headers["set-cookie"] == "last_created=grace; Path=/"
        assert request(port, "POST", "/users", grace).status == 201  # arrives base64
        listed = request(port, "GET", "/users")
        assert [user["id"] for user in json.loads(listed.body)] == ["ada", "grace"]
        assert request(port, "GET", "/users/nobody").status == 404
        legacy = request(port, "GET", "/legacy/any/path?tag=a&tag=b")
        assert legacy.json() == {
            "resource": "/legacy/{proxy+}",
            "pathParameters": {"proxy": "any/path"},
            "multiValueQueryStringParameters": {"tag": ["a", "b"]},
        }
        assert legacy.headers.get_all("X-Seen") == ["path", "query"]
        png = request(port, "GET", "/legacy/pixel.png", headers={"Accept": "image/png"})
        assert png.body.startswith(b"\x89PNG")
        preflight = request(
            port,
            "OPTIONS",
            "/users/ada",
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status == 204
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
