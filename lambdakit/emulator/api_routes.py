"""API Gateway's routes as values, and how a request finds its route.

https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html

:class:`ApiConfig` is what ``lambdakit serve`` serves on its API Gateway port: routes of a REST
API (payload format 1.0) and of an HTTP API (2.0, or 1.0 when a route asks), each kind's CORS
settings and the REST API's binary media types.  It is built from ``lambdakit.toml``'s ``[api]``
table (:mod:`lambdakit.emulator.api_kinds`) or from a SAM template's ``Api`` and ``HttpApi``
events; either way :func:`check_api` says what is wrong, naming each route's ``source``.

Theory of operation.  A route's path is a template: literal segments, ``{name}`` segments and
one greedy ``{name+}`` segment at the end, which takes one or more segments.  An HTTP API may
also have a ``$default`` route, which takes every request no other route takes.  Among the
routes whose path and method match a request, the most specific wins, as API Gateway chooses:
a path without a greedy variable before one with it, then segment by segment a literal before a
variable, a longer literal prefix before a shorter one for greedy paths, an explicit method
before ``ANY``, and ``$default`` last.  :class:`RouteTable` sorts the routes once in that order,
so a request takes the first route that matches.  Path parameters reach the function
URL-decoded, as API Gateway passes them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

#: The two kinds of API: a REST API (SAM ``Api``) and an HTTP API (SAM ``HttpApi``).
ApiKind = Literal["rest", "http"]
KINDS: tuple[ApiKind, ...] = ("http", "rest")
FORMATS = ("1.0", "2.0")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
#: The HTTP API's catch-all route.
DEFAULT_ROUTE = "$default"
#: Where API Gateway serves when a port is not given (``sam local start-api``'s).
DEFAULT_PORT = 3000


@dataclass(frozen=True)
class Cors:
    """An API's CORS settings (SAM: ``Cors`` of an ``Api``, ``CorsConfiguration`` of an
    ``HttpApi``).  Origins may be ``*`` or end in ``*`` (``https://*``)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


#: ``cors = true``: every origin, method and header.
ALLOW_ALL = Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))


@dataclass(frozen=True)
class ApiRoute:
    """One route: a method and a path template of a REST or HTTP API, and its function."""

    function: str
    kind: ApiKind = "http"
    #: An HTTP method or ``ANY``, upper case.
    method: str = "ANY"
    #: ``/users/{id}``, ``/files/{proxy+}``, or ``$default`` (HTTP APIs).
    path: str = DEFAULT_ROUTE
    #: The payload format, "1.0" or "2.0"; None: the kind's own (REST 1.0, HTTP 2.0).
    format: str | None = None
    #: Where the route was declared, for errors (``lambdakit.toml [[api.routes]] #2``).
    source: str = field(default="", compare=False)

    @property
    def payload_format(self) -> str:
        return self.format or ("1.0" if self.kind == "rest" else "2.0")

    @property
    def route_key(self) -> str:
        """``GET /users/{id}``, or ``$default``."""
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


@dataclass(frozen=True)
class ApiConfig:
    """What the API Gateway port serves.

    With several APIs of one kind (a template with two ``AWS::Serverless::Api``), their routes
    share the port and their settings are merged by whoever builds this value.
    """

    routes: tuple[ApiRoute, ...] = ()
    port: int = DEFAULT_PORT
    #: The HTTP API's CORS: preflights answered, headers added to every response.
    http_cors: Cors | None = None
    #: The REST API's CORS: preflights answered (responses carry what the function sets).
    rest_cors: Cors | None = None
    #: The REST API's binary media types (``image/png``, ``image/*``, ``*/*``).
    binary_media_types: tuple[str, ...] = ()
    #: Where it was declared, for errors (``lambdakit.toml [api]``, ``--api-port``).
    source: str = field(default="", compare=False)


class ApiError(ValueError):
    """A route or setting that API Gateway would refuse; the message names its source."""


# --- path templates -----------------------------------------------------------------------------
Segment = tuple[Literal["literal", "param", "greedy"], str]


def parse_template(path: str) -> tuple[Segment, ...]:
    """The segments of a route's path; ValueError says what is wrong with it."""
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/' (or be {DEFAULT_ROUTE})")
    parts = [part for part in path.strip("/").split("/")] if path.strip("/") else []
    segments: list[Segment] = []
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                if index != len(parts) - 1:
                    raise ValueError(f"path {path!r}: a greedy {part} must be the last segment")
                segments.append(("greedy", name[:-1]))
                continue
            if not name or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"path {path!r}: {part} is not a valid path variable")
            segments.append(("param", name))
        elif "{" in part or "}" in part:
            raise ValueError(f"path {path!r}: {part!r} mixes text and a variable")
        else:
            segments.append(("literal", part))
    names = [name for kind, name in segments if kind != "literal"]
    if len(names) != len(set(names)):
        raise ValueError(f"path {path!r} names a variable twice")
    return tuple(segments)


def route_problem(route: ApiRoute, functions: Collection[str]) -> str | None:
    """What API Gateway (or this service) would refuse in ``route``; None if nothing."""
    if route.kind not in KINDS:
        return f"kind {route.kind!r} is not one of {', '.join(KINDS)}"
    if route.method not in METHODS:
        return f"method {route.method!r} is not one of {', '.join(METHODS)}"
    if route.format is not None and route.format not in FORMATS:
        return f"format {route.format!r} is not one of {', '.join(FORMATS)}"
    if route.kind == "rest" and route.format == "2.0":
        return 'a REST API sends payload format 1.0 only (use kind = "http" for 2.0)'
    if route.path == DEFAULT_ROUTE:
        if route.kind == "rest":
            return f"{DEFAULT_ROUTE} is a route of HTTP APIs only"
    else:
        try:
            parse_template(route.path)
        except ValueError as exc:
            return str(exc)
    if route.function not in functions:
        known = ", ".join(sorted(functions))
        return f"no function named {route.function!r} in this service (functions: {known})"
    return None


def check_api(api: ApiConfig, functions: Collection[str]) -> None:
    """Raise :class:`ApiError` naming the first route that is wrong, or declared twice."""
    if not api.routes:
        raise ApiError(f"{api.source}: declares no routes".lstrip(": "))
    seen: dict[tuple[str, str], ApiRoute] = {}
    for route in api.routes:
        problem = route_problem(route, functions)
        if problem:
            raise ApiError(f"{route.source}: {problem}".lstrip(": "))
        key = (route.method, _shape(route.path))
        if key in seen:
            raise ApiError(
                f"{route.source}: {route.route_key} is already routed "
                f"({seen[key].source or seen[key].route_key})".lstrip(": ")
            )
        seen[key] = route


def _shape(path: str) -> str:
    """A path with its variables' names left out: ``/a/{x}`` and ``/a/{y}`` are one route."""
    if path == DEFAULT_ROUTE:
        return path
    return "/" + "/".join(
        text if kind == "literal" else ("{+}" if kind == "greedy" else "{}")
        for kind, text in parse_template(path)
    )


# --- matching -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    #: Path parameters, URL-decoded (a greedy one keeps its slashes).
    parameters: Mapping[str, str]


@dataclass(frozen=True)
class _Compiled:
    route: ApiRoute
    segments: tuple[Segment, ...]
    greedy: bool
    catch_all: bool

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if self.catch_all:
            return {}
        segments = self.segments
        fixed = segments[:-1] if self.greedy else segments
        if len(parts) < len(fixed) + (1 if self.greedy else 0):
            return None
        if not self.greedy and len(parts) != len(fixed):
            return None
        parameters: dict[str, str] = {}
        for (kind, text), part in zip(fixed, parts, strict=False):
            if kind == "literal":
                if unquote(part) != text:
                    return None
            else:
                parameters[text] = unquote(part)
        if self.greedy:
            parameters[segments[-1][1]] = unquote("/".join(parts[len(fixed) :]))
        return parameters

    def sort_key(self) -> tuple[object, ...]:
        fixed = self.segments[:-1] if self.greedy else self.segments
        ranks = tuple(0 if kind == "literal" else 1 for kind, _ in fixed)
        return (
            self.catch_all,
            self.greedy,
            -len(fixed) if self.greedy else 0,
            ranks,
            self.route.method == "ANY",
        )


class RouteTable:
    """The routes of one port, most specific first."""

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        compiled = [
            _Compiled(
                route,
                () if route.path == DEFAULT_ROUTE else parse_template(route.path),
                route.path != DEFAULT_ROUTE and route.path.rstrip("/").endswith("+}"),
                route.path == DEFAULT_ROUTE,
            )
            for route in routes
        ]
        self._routes = sorted(compiled, key=_Compiled.sort_key)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route a request takes, with its path parameters; None if no route takes it."""
        parts = split_path(path)
        for compiled in self._routes:
            route = compiled.route
            if route.method not in ("ANY", method):
                continue
            parameters = compiled.match(parts)
            if parameters is not None:
                return RouteMatch(route, parameters)
        return None

    def paths_matching(self, path: str) -> list[ApiRoute]:
        """Every route whose path takes ``path``, whatever its method (for CORS preflights)."""
        parts = split_path(path)
        return [c.route for c in self._routes if not c.catch_all and c.match(parts) is not None]


def split_path(path: str) -> list[str]:
    """A request path's segments (still URL-encoded); a trailing slash is not a segment."""
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []
