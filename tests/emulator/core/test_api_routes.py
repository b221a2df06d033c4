"""The route table in memory: API Gateway's order of specificity, path parameters, ``ANY`` and
``$default``."""

from __future__ import annotations

import pytest

from lambdakit.emulator.api_routes import ApiRoute, RouteTable, parse_template

ROUTES = RouteTable(
    [
        ApiRoute("catch-all"),  # $default
        ApiRoute("any-greedy", method="ANY", path="/{proxy+}"),
        ApiRoute("pets-greedy", method="GET", path="/pets/{proxy+}"),
        ApiRoute("dog-id", method="GET", path="/pets/dog/{id}"),
        ApiRoute("dog-1", method="GET", path="/pets/dog/1"),
        ApiRoute("dog-1-any", method="ANY", path="/pets/dog/1"),
        ApiRoute("kind-toy", method="GET", path="/pets/{kind}/toys"),
        ApiRoute("root", method="GET", path="/"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "function", "parameters"),
    [
        ("GET", "/pets/dog/1", "dog-1", {}),
        ("POST", "/pets/dog/1", "dog-1-any", {}),
        ("GET", "/pets/dog/2", "dog-id", {"id": "2"}),
        ("GET", "/pets/cat/toys", "kind-toy", {"kind": "cat"}),
        ("GET", "/pets/dog/toys", "dog-id", {"id": "toys"}),  # a literal prefix wins
        ("GET", "/pets/cat/1", "pets-greedy", {"proxy": "cat/1"}),
        ("POST", "/pets/cat/1", "any-greedy", {"proxy": "pets/cat/1"}),
        ("GET", "/pets", "any-greedy", {"proxy": "pets"}),
        ("GET", "/", "root", {}),
        ("POST", "/", "catch-all", {}),  # a greedy variable takes one segment or more
        ("GET", "/pets/dog/1/", "dog-1", {}),  # a trailing slash is no segment
        ("GET", "/pets/dog/a%2Fb", "dog-id", {"id": "a/b"}),  # decoded
    ],
)
def test_the_most_specific_route_takes_the_request(
    method: str, path: str, function: str, parameters: dict[str, str]
) -> None:
    found = ROUTES.match(method, path)
    assert found is not None
    assert (found.route.function, dict(found.parameters)) == (function, parameters)


def test_without_default_an_unmatched_request_has_no_route() -> None:
    table = RouteTable([ApiRoute("f", method="GET", path="/a/{b}")])
    assert table.match("GET", "/a") is None
    assert table.match("POST", "/a/1") is None
    assert table.match("GET", "/a/1/2") is None
    assert [r.function for r in table.paths_matching("/a/1")] == ["f"]


@pytest.mark.parametrize("path", ["users", "/{a+}/b", "/a{b}", "/{a}/{a}", "/{}", "/{a b}"])
def test_bad_templates_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        parse_template(path)
