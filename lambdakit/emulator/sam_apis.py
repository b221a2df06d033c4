"""A SAM template's API Gateway routes, read (not served): ``Api`` and ``HttpApi`` events, and
the ``AWS::Serverless::Api`` / ``AWS::Serverless::HttpApi`` settings a local gateway needs, and
the :class:`~lambdakit.emulator.api_routes.ApiConfig` the API Gateway door serves from them.

A function's event of ``Type: Api`` is a route of a REST API (payload format 1.0), of
``Type: HttpApi`` a route of an HTTP API (2.0 unless ``PayloadFormatVersion`` says 1.0)
(https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-api.html,
.../sam-property-function-httpapi.html).  An event without ``RestApiId`` / ``ApiId`` belongs to
the API SAM creates implicitly (``ServerlessRestApi``, ``ServerlessHttpApi``), whose settings are
``Globals.Api`` / ``Globals.HttpApi``; an explicit API's properties are merged over those.  Of an
API's settings this reads the stage, CORS (``Cors`` of a REST API, its values quoted as API
Gateway wants them; ``CorsConfiguration`` of an HTTP API) and ``BinaryMediaTypes``; the others are
listed in :attr:`ApiSettings.unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdakit.emulator.api_routes import DEFAULT_PORT, ApiConfig, ApiKind, ApiRoute, Cors
from lambdakit.emulator.intrinsics import Resolver, Unresolved

REST_API = "AWS::Serverless::Api"
HTTP_API = "AWS::Serverless::HttpApi"
#: The logical ids SAM gives the APIs it creates for events that name none.
IMPLICIT = {"rest": "ServerlessRestApi", "http": "ServerlessHttpApi"}
_EVENT_KIND: Mapping[str, ApiKind] = {"Api": "rest", "HttpApi": "http"}
_READ = {"StageName", "Cors", "CorsConfiguration", "BinaryMediaTypes"}


@dataclass(frozen=True)
class ApiSettings:
    """One API of the template: its kind, stage, CORS and binary media types."""

    api_id: str
    api_kind: ApiKind
    stage_name: str
    cors: Cors | None = None
    binary_media_types: tuple[str, ...] = ()
    #: The API's properties this reader does not interpret (Auth, Domain, DefinitionBody, ...).
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiEvent:
    """One route: an ``Api`` or ``HttpApi`` event of a function."""

    #: The function's name in the service.
    function: str
    api_kind: ApiKind
    #: Upper case; ``ANY`` for any method.
    method: str
    #: As the template writes it (``/orders/{id}``, ``/{proxy+}``); ``$default`` for an HTTP
    #: API's default route (an ``HttpApi`` event without Path and Method).
    path: str
    #: The logical id of the API (``ServerlessRestApi`` / ``ServerlessHttpApi`` if implicit).
    api_id: str
    #: The event's name in the function's ``Events``.
    event: str
    #: ``1.0`` (REST, or an HTTP API route that asks for it) or ``2.0``.
    payload_format: str


def is_api_event(kind: object) -> bool:
    return kind in _EVENT_KIND


def read_event(
    function: str,
    event: str,
    definition: Mapping[str, Any],
    resolver: Resolver,
    where: str,
    warn: Callable[[str], None],
) -> ApiEvent | None:
    """The route of one ``Api`` / ``HttpApi`` event; None (and a warning) if it has none."""
    kind = _EVENT_KIND[str(definition.get("Type"))]
    raw = definition.get("Properties") or {}
    properties = resolver.resolve(raw, f"{where}.Properties") if isinstance(raw, dict) else {}
    id_key = "RestApiId" if kind == "rest" else "ApiId"
    api_id = properties.get(id_key, IMPLICIT[kind])
    path, method = properties.get("Path"), properties.get("Method")
    if kind == "http" and path is None and method is None:
        path, method = "$default", "ANY"
    if not isinstance(path, str) or not isinstance(method, str) or not isinstance(api_id, str):
        warn(f"{where}: a {definition.get('Type')} event needs Path and Method; not routed")
        return None
    default_format = "1.0" if kind == "rest" else "2.0"
    payload_format = str(properties.get("PayloadFormatVersion", default_format))
    return ApiEvent(
        function=function,
        api_kind=kind,
        method="ANY" if method.lower() == "any" else method.upper(),
        path=path,
        api_id=api_id,
        event=event,
        payload_format=payload_format,
    )


def read_apis(
    path_name: str,
    resources: Mapping[str, Any],
    globals_section: Mapping[str, Any],
    events: list[ApiEvent],
    resolver: Resolver,
    warn: Callable[[str], None],
) -> dict[str, ApiSettings]:
    """The settings of every API the template declares or its events imply."""
    apis: dict[str, ApiSettings] = {}
    for kind, resource_type, global_key in (
        ("rest", REST_API, "Api"),
        ("http", HTTP_API, "HttpApi"),
    ):
        shared = globals_section.get(global_key) or {}
        shared = resolver.resolve(shared, f"{path_name} Globals.{global_key}")
        for logical_id, resource in resources.items():
            if isinstance(resource, dict) and resource.get("Type") == resource_type:
                own = resource.get("Properties") or {}
                where = f"{path_name} Resources.{logical_id}.Properties"
                properties = {**shared, **resolver.resolve(own, where)}
                apis[logical_id] = _settings(logical_id, kind, properties)  # type: ignore[arg-type]
        implicit = IMPLICIT[kind]
        if any(e.api_kind == kind and e.api_id == implicit for e in events):
            apis[implicit] = _settings(implicit, kind, dict(shared))  # type: ignore[arg-type]
    for event in events:
        if event.api_id not in apis:
            warn(
                f"{path_name}: the {event.event} event of {event.function} names API "
                f"{event.api_id!r}, which the template does not declare"
            )
    return apis


def _settings(api_id: str, kind: ApiKind, properties: Mapping[str, Any]) -> ApiSettings:
    default_stage = "Prod" if kind == "rest" else "$default"
    stage = properties.get("StageName", default_stage)
    cors = _rest_cors(properties.get("Cors")) if kind == "rest" else None
    if kind == "http":
        cors = _http_cors(properties.get("CorsConfiguration"))
    media = properties.get("BinaryMediaTypes") or []
    return ApiSettings(
        api_id=api_id,
        api_kind=kind,
        stage_name=stage if isinstance(stage, str) else default_stage,
        cors=cors,
        binary_media_types=tuple(
            str(item).replace("~1", "/") for item in media if isinstance(item, str)
        ),
        unsupported=tuple(sorted(key for key in properties if key not in _READ)),
    )


def _unquoted(value: Any) -> tuple[str, ...]:
    """A REST API's CORS value (``"'GET,POST'"``) as its items."""
    if not isinstance(value, str):
        return ()
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _rest_cors(value: Any) -> Cors | None:
    if value is None or isinstance(value, Unresolved):
        return None
    if isinstance(value, str):
        return Cors(allow_origins=_unquoted(value), allow_methods=("*",), allow_headers=("*",))
    if not isinstance(value, dict):
        return None
    max_age = _unquoted(value.get("MaxAge"))
    return Cors(
        allow_origins=_unquoted(value.get("AllowOrigin")),
        allow_methods=_unquoted(value.get("AllowMethods")) or ("*",),
        allow_headers=_unquoted(value.get("AllowHeaders")),
        max_age=int(max_age[0]) if max_age and max_age[0].isdigit() else None,
        allow_credentials=value.get("AllowCredentials") is True,
    )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(item) for item in value if isinstance(item, (str, int)))
    return (value,) if isinstance(value, str) else ()


def _http_cors(value: Any) -> Cors | None:
    if value is True:
        return Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    if not isinstance(value, dict):
        return None
    max_age = value.get("MaxAge")
    return Cors(
        allow_origins=_strings(value.get("AllowOrigins")),
        allow_methods=_strings(value.get("AllowMethods")),
        allow_headers=_strings(value.get("AllowHeaders")),
        expose_headers=_strings(value.get("ExposeHeaders")),
        max_age=max_age if isinstance(max_age, int) and not isinstance(max_age, bool) else None,
        allow_credentials=value.get("AllowCredentials") is True,
    )


def api_config(
    events: Iterable[ApiEvent],
    apis: Mapping[str, ApiSettings],
    where: str,
    port: int = DEFAULT_PORT,
) -> ApiConfig | None:
    """The routes ``serve`` answers for the template's ``Api`` / ``HttpApi`` events; None if
    it has none.

    Every API of a kind shares the one API Gateway port (as ``sam local start-api`` serves
    them): the first of each kind's CORS settings applies, and the REST APIs' binary media
    types are merged.
    """
    routes = tuple(
        ApiRoute(
            function=event.function,
            kind=event.api_kind,
            method=event.method,
            path=event.path,
            format=event.payload_format,
            source=f"{where} {event.function} Events.{event.event}",
        )
        for event in events
    )
    if not routes:
        return None
    used = [apis[event.api_id] for event in events if event.api_id in apis]
    return ApiConfig(
        routes=routes,
        port=port,
        http_cors=next((a.cors for a in used if a.api_kind == "http" and a.cors), None),
        rest_cors=next((a.cors for a in used if a.api_kind == "rest" and a.cors), None),
        binary_media_types=tuple(
            dict.fromkeys(t for a in used if a.api_kind == "rest" for t in a.binary_media_types)
        ),
        source=where,
    )
