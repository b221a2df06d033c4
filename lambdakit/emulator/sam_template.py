"""``serve --template``: an AWS SAM template's functions as the service's functions.

Theory of operation
-------------------
The template is read once (:mod:`lambdakit.emulator.template_yaml`), its parameters take their
``--parameter-overrides`` value or their ``Default``, and each ``AWS::Serverless::Function``
(https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-resource-function.html)
gets ``Globals.Function`` merged under its own properties as SAM merges them
(https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-template-anatomy-globals.html):
a value of the function replaces a global one, maps are merged, global list items come first.
Its values are resolved where they can be (:mod:`lambdakit.emulator.intrinsics`), then given to
:func:`~lambdakit.emulator.config.build_function`, property by property, exactly as the settings
of a ``lambdakit.toml`` table are: the same checks, the same runtime choice, errors naming the
template and the property (``template.yaml Resources.Orders.Properties.Timeout: ...``).

Read: Handler, Runtime (``python3.x`` on lambdakit's Python runtime, ``provided*`` the
``bootstrap`` of CodeUri), CodeUri (a directory, relative to the template), Timeout, MemorySize,
ReservedConcurrentExecutions, Environment.Variables, Layers (``!Ref`` of an
``AWS::Serverless::LayerVersion`` with a local ContentUri), FunctionUrlConfig, EventInvokeConfig
(retries, age, destinations that are functions of the template), FunctionName, Description,
Architectures, and the ``Api`` / ``HttpApi`` events (:mod:`lambdakit.emulator.sam_apis`).  Every
other property is named in a warning, never dropped in silence; what cannot run here (an image
function, code in S3, no template at all) is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdakit.emulator import sam_apis
from lambdakit.emulator.config import FunctionConfig, build_function
from lambdakit.emulator.intrinsics import Resolver, Scope, Unresolved, short
from lambdakit.emulator.option_kinds import ConfigError, Given, Source
from lambdakit.emulator.options import Option
from lambdakit.emulator.template_yaml import load_template

FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"

#: SAM refuses these in ``Globals.Function``.
_NOT_GLOBAL = ("FunctionName", "Events", "Role", "Policies")
#: Properties read into the function's settings (the others are warned about).
_READ = frozenset(
    {
        "Handler",
        "Runtime",
        "CodeUri",
        "Timeout",
        "MemorySize",
        "ReservedConcurrentExecutions",
        "Environment",
        "Layers",
        "FunctionUrlConfig",
        "EventInvokeConfig",
        "FunctionName",
        "Description",
        "Architectures",
        "Events",
        "PackageType",
    }
)
#: Why some properties mean nothing here (the others are "not supported locally").
_WHY_IGNORED = {
    "Role": "IAM is not enforced locally",
    "Policies": "IAM is not enforced locally",
    "AssumeRolePolicyDocument": "IAM is not enforced locally",
    "PermissionsBoundary": "IAM is not enforced locally",
    "RolePath": "IAM is not enforced locally",
    "Tracing": "there is no X-Ray locally",
    "VpcConfig": "the function uses this machine's network",
    "Tags": "tags have no local effect",
    "AutoPublishAlias": "versions and aliases are not published locally ($LATEST runs)",
    "DeploymentPreference": "deployments happen in the cloud",
    "ProvisionedConcurrencyConfig": "environments start on demand locally",
    "KmsKeyArn": "variables are not encrypted locally",
    "DeadLetterQueue": "there is no SQS or SNS locally (use EventInvokeConfig OnFailure)",
    "SnapStart": "there are no snapshots locally",
}
#: Which setting each read property gives, for the errors of ``build_function``.
_PROPERTY_OF = {
    "handler": "Handler",
    "code_dir": "CodeUri",
    "timeout": "Timeout",
    "memory": "MemorySize",
    "concurrency": "ReservedConcurrentExecutions",
    "env": "Environment",
    "layers": "Layers",
    "url_port": "FunctionUrlConfig",
    "max_retry_attempts": "EventInvokeConfig",
    "max_event_age": "EventInvokeConfig",
    "on_success": "EventInvokeConfig",
    "on_failure": "EventInvokeConfig",
}
_PYTHON = re.compile(r"^python(\d+)\.(\d+)$")
_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(?::\$LATEST)?$")
_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class FunctionDetails:
    """What the template says of a function beyond its settings (for ListFunctions)."""

    name: str
    logical_id: str
    runtime: str
    description: str = ""
    architecture: str = "x86_64"


@dataclass(frozen=True)
class SamTemplate:
    """The functions of a template, their API routes and what was not understood."""

    path: Path
    functions: Mapping[str, FunctionConfig]
    details: Mapping[str, FunctionDetails]
    api_events: tuple[sam_apis.ApiEvent, ...]
    apis: Mapping[str, sam_apis.ApiSettings]
    #: One line each: the property or value, and why it is not used.
    warnings: tuple[str, ...]


def read_template(
    path: Path,
    *,
    parameters: Mapping[str, str],
    region: str,
    account_id: str,
    environ: Mapping[str, str],
) -> SamTemplate:
    """Read ``path``; :class:`ConfigError` (one line, naming the file) if it cannot be served."""
    return _Reader(path, parameters, region, account_id, environ).read()


class _Reader:
    def __init__(
        self,
        path: Path,
        overrides: Mapping[str, str],
        region: str,
        account_id: str,
        environ: Mapping[str, str],
    ) -> None:
        self.path = path
        self.base = path.parent.resolve()
        self.overrides = overrides
        self.region = region
        self.account_id = account_id
        self.environ = environ
        self.warnings: list[str] = []
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)

    def where(self, *parts: str) -> str:
        return " ".join((str(self.path), ".".join(parts)))

    # --- the document ------------------------------------------------------------------------
    def read(self) -> SamTemplate:
        document = load_template(self.path)
        resources = document.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise ConfigError(f"--template: {self.path} has no Resources")
        self.resources = resources
        globals_section = document.get("Globals") or {}
        if not isinstance(globals_section, dict):
            raise ConfigError(f"{self.where('Globals')}: expected a mapping")
        self.globals = globals_section
        for key in globals_section:
            if key not in {"Function", "Api", "HttpApi"}:
                self.warn(f"{self.where('Globals', str(key))}: not used locally, ignored")
        parameters = self._parameters(document.get("Parameters") or {})
        scope = Scope(
            parameters=parameters,
            region=self.region,
            account_id=self.account_id,
            conditions=_mapping(document.get("Conditions")),
            mappings=_mapping(document.get("Mappings")),
        )
        naming = Resolver(scope, self.warn)
        ids = self._served_ids(naming)
        if not ids:
            raise ConfigError(
                f"--template: {self.path} declares no {FUNCTION} (lambdakit serves those)"
            )
        names = {logical_id: self._name(logical_id, naming) for logical_id in ids}
        layers = {
            logical_id: f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{logical_id}:1"
            for logical_id, resource in resources.items()
            if isinstance(resource, dict) and resource.get("Type") == LAYER
        }
        self.layer_arns = {arn: logical_id for logical_id, arn in layers.items()}
        api_ids = {
            logical_id: logical_id
            for logical_id, resource in resources.items()
            if isinstance(resource, dict)
            and resource.get("Type") in (sam_apis.REST_API, sam_apis.HTTP_API)
        }
        arns = {
            (logical_id, "Arn"): f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            for logical_id, name in names.items()
        }
        self.resolver = Resolver(
            Scope(
                parameters=parameters,
                region=self.region,
                account_id=self.account_id,
                refs={**names, **layers, **api_ids},
                attributes=arns,
                conditions=scope.conditions,
                mappings=scope.mappings,
            ),
            self.warn,
        )
        self.names = names
        self._warn_other_resources()
        global_function = self._global_function()
        functions: dict[str, FunctionConfig] = {}
        details: dict[str, FunctionDetails] = {}
        events: list[sam_apis.ApiEvent] = []
        for logical_id in ids:
            built = self._function(logical_id, global_function)
            if built is None:
                continue
            function, detail, routes = built
            if function.name in functions:
                raise ConfigError(
                    f"{self.where('Resources', logical_id)}: the function name "
                    f"{function.name!r} is also another function's"
                )
            functions[function.name] = function
            details[function.name] = detail
            events += routes
        if not functions:
            raise ConfigError(
                f"--template: {self.path}: none of its functions can be served here (see the "
                "warnings above)"
            )
        apis = sam_apis.read_apis(
            str(self.path), resources, globals_section, events, self.resolver, self.warn
        )
        return SamTemplate(
            path=self.path,
            functions=functions,
            details=details,
            api_events=tuple(events),
            apis=apis,
            warnings=tuple(self.warnings),
        )

    def _parameters(self, declared: Any) -> dict[str, Any]:
        if not isinstance(declared, dict):
            raise ConfigError(f"{self.where('Parameters')}: expected a mapping")
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            definition = declaration if isinstance(declaration, dict) else {}
            kind = str(definition.get("Type", "String"))
            if name in self.overrides:
                value: Any = self.overrides[name]
            elif "Default" in definition and not kind.startswith("AWS::SSM::"):
                value = definition["Default"]
            else:
                value = Unresolved(f"!Ref {name}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and (
                kind == "CommaDelimitedList" or kind.startswith("List<")
            ):
                value = [item.strip() for item in value.split(",")]
            values[name] = value
        for name in self.overrides:
            if name not in declared:
                self.warn(f"--parameter-overrides: {name} is not a parameter of {self.path}")
        return values

    def _served_ids(self, resolver: Resolver) -> list[str]:
        """The functions' logical ids, less those whose Condition is false."""
        ids = []
        for logical_id, resource in self.resources.items():
            if not isinstance(resource, dict) or resource.get("Type") != FUNCTION:
                continue
            condition = resource.get("Condition")
            if isinstance(condition, str):
                truth = resolver.condition(condition, self.where("Resources", logical_id))
                if truth is False:
                    self.warn(
                        f"{self.where('Resources', logical_id)}: not served: its Condition "
                        f"{condition} is false"
                    )
                    continue
                if isinstance(truth, Unresolved):
                    self.warn(
                        f"{self.where('Resources', logical_id)}: served although its Condition "
                        f"{condition} cannot be decided locally"
                    )
            ids.append(logical_id)
        return ids

    def _name(self, logical_id: str, resolver: Resolver) -> str:
        properties = self.resources[logical_id].get("Properties") or {}
        if not isinstance(properties, dict) or "FunctionName" not in properties:
            return logical_id
        where = self.where("Resources", logical_id, "Properties", "FunctionName")
        name = resolver.resolve(properties["FunctionName"], where)
        if isinstance(name, str) and name:
            return name
        self.warn(f"{where}: not known locally; the function is named {logical_id}")
        return logical_id

    def _warn_other_resources(self) -> None:
        served = {FUNCTION, LAYER, sam_apis.REST_API, sam_apis.HTTP_API}
        others = [
            f"{logical_id} ({resource.get('Type')})"
            for logical_id, resource in self.resources.items()
            if isinstance(resource, dict) and resource.get("Type") not in served
        ]
        if others:
            self.warn(f"{self.path}: not emulated locally: {', '.join(others)}")

    def _global_function(self) -> dict[str, Any]:
        section = self.globals.get("Function") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{self.where('Globals', 'Function')}: expected a mapping")
        for key in _NOT_GLOBAL:
            if key in section:
                raise ConfigError(
                    f"{self.where('Globals', 'Function', key)}: SAM does not allow {key} in Globals"
                )
        return section

    # --- one function ----------------------------------------------------------------------------
    def _function(
        self, logical_id: str, global_function: Mapping[str, Any]
    ) -> tuple[FunctionConfig, FunctionDetails, list[sam_apis.ApiEvent]] | None:
        resource = self.resources[logical_id]
        own = resource.get("Properties") or {}
        if not isinstance(own, dict):
            raise ConfigError(
                f"{self.where('Resources', logical_id, 'Properties')}: expected a mapping"
            )
        merged = merge_globals(global_function, own)
        name = self.names[logical_id]

        def origin(prop: str) -> str:
            if prop in global_function and prop not in own:
                return self.where("Globals", "Function", prop)
            return self.where("Resources", logical_id, "Properties", prop)

        # Only what is read is resolved: an ignored property's unknowns are not worth a warning.
        values = {
            prop: self.resolver.resolve(value, origin(prop))
            for prop, value in merged.items()
            if prop in _READ and prop not in ("Events", "Layers")
        }
        values.update((prop, merged[prop]) for prop in ("InlineCode", "ImageUri") if prop in merged)
        for prop in merged:
            if prop not in _READ:
                why = _WHY_IGNORED.get(prop, "not supported locally")
                self.warn(f"{origin(prop)}: ignored ({why})")
        self._refuse_what_cannot_run(logical_id, values, origin)
        runtime = values.get("Runtime")
        if not isinstance(runtime, str):
            raise ConfigError(
                f"{self.where('Resources', logical_id, 'Properties', 'Runtime')}: missing (a Zip "
                "function needs a Runtime, here or in Globals.Function)"
            )
        source = self._source
        chosen = self._runtime(logical_id, runtime, values.get("Handler"), origin)
        if chosen is None:
            return None
        given: dict[str, Given] = {
            "name": Given(name, source(self.where("Resources", logical_id))),
            "code_dir": self._code(values.get("CodeUri", "."), origin("CodeUri")),
            **chosen,
        }
        code_dir = self.base / str(given["code_dir"].value)
        if "runtime" not in chosen and code_dir.is_dir() and not (code_dir / "bootstrap").exists():
            raise ConfigError(
                f"{origin('CodeUri')}: Runtime {runtime} runs the 'bootstrap' of CodeUri, and "
                f"{str(code_dir.resolve())!r} has none (build it first; after sam build, serve "
                ".aws-sam/build/template.yaml)"
            )
        for prop, setting in (
            ("Timeout", "timeout"),
            ("MemorySize", "memory"),
            ("ReservedConcurrentExecutions", "concurrency"),
        ):
            if prop in values and not isinstance(values[prop], Unresolved):
                given[setting] = Given(values[prop], source(origin(prop)))
        environment = values.get("Environment")
        if environment is not None:
            given["env"] = Given(
                self._variables(environment, origin("Environment")), source(origin("Environment"))
            )
        layers = self._layers(merged.get("Layers"), origin("Layers"), runtime)
        if layers:
            given["layers"] = Given(layers, source(origin("Layers")))
        if "FunctionUrlConfig" in values:
            given.update(self._url(values["FunctionUrlConfig"], origin("FunctionUrlConfig")))
        if "EventInvokeConfig" in values:
            given.update(
                self._event_config(values["EventInvokeConfig"], origin("EventInvokeConfig"))
            )
        architecture = self._architecture(values.get("Architectures"), origin("Architectures"))
        description = values.get("Description")
        routes = self._events(name, logical_id, merged.get("Events"), origin("Events"))

        def spelling(option: Option) -> Source:
            prop = _PROPERTY_OF.get(option.name)
            if prop:
                return source(origin(prop))
            return source(f"{self.where('Resources', logical_id)} ({option.name})")

        function = build_function(
            given,
            spelling,
            environ=self.environ,
            hint=f"Runtime {runtime} runs the 'bootstrap' of CodeUri (build it first)",
            names=set(self.names.values()),
        )
        detail = FunctionDetails(
            name=function.name,
            logical_id=logical_id,
            runtime=runtime,
            description=description if isinstance(description, str) else "",
            architecture=architecture,
        )
        return function, detail, routes

    def _runtime(
        self, logical_id: str, runtime: str, handler: Any, origin: Callable[[str], str]
    ) -> dict[str, Given] | None:
        """The settings that choose the runtime; None (and a warning) for one not run here."""
        source = self._source
        python = _PYTHON.fullmatch(runtime)
        if python:
            if not isinstance(handler, str) or not handler:
                raise ConfigError(f"{origin('Handler')}: missing (Runtime {runtime} needs one)")
            running = (sys.version_info.major, sys.version_info.minor)
            if (int(python.group(1)), int(python.group(2))) != running:
                self.warn(
                    f"{origin('Runtime')}: {runtime} runs on this machine's Python "
                    f"{running[0]}.{running[1]} ({sys.executable})"
                )
            return {
                "runtime": Given("python", source(origin("Runtime"))),
                "handler": Given(handler, source(origin("Handler"))),
            }
        if runtime.startswith("provided"):
            if isinstance(handler, str) and handler:
                return {"handler": Given(handler, source(origin("Handler")))}
            return {}
        self.warn(
            f"{origin('Runtime')}: {runtime} is not run by lambdakit; {logical_id} is not "
            "served (serve it from a lambdakit.toml with command = [...] starting its "
            "runtime interface client, or build it as a provided.al2023 bootstrap)"
        )
        return None

    def _code(self, code: Any, where: str) -> Given:
        if isinstance(code, dict) or (isinstance(code, str) and code.startswith("s3://")):
            shown = short(code) if isinstance(code, dict) else code
            raise ConfigError(
                f"{where}: {shown} is not a local directory (lambdakit serves code from this "
                "machine)"
            )
        if isinstance(code, Unresolved):
            raise ConfigError(f"{where}: {code.text} is not known locally")
        return Given(str(code), self._source(where))

    def _source(self, name: str) -> Source:
        return Source(name, self.base, self.environ)

    def _refuse_what_cannot_run(
        self, logical_id: str, values: Mapping[str, Any], origin: Callable[[str], str]
    ) -> None:
        if values.get("PackageType") == "Image" or (
            "ImageUri" in values and "CodeUri" not in values
        ):
            raise ConfigError(
                f"{origin('PackageType' if 'PackageType' in values else 'ImageUri')}: {logical_id} "
                "is an image function; lambdakit runs Zip functions (a CodeUri directory and a "
                "Runtime) without Docker"
            )
        if "InlineCode" in values:
            raise ConfigError(
                f"{origin('InlineCode')}: inline code is not served; put it in a directory and "
                "give CodeUri"
            )

    def _variables(self, environment: Any, where: str) -> dict[str, str]:
        variables = environment.get("Variables") if isinstance(environment, dict) else None
        if isinstance(environment, dict):
            for key in environment:
                if key != "Variables":
                    self.warn(f"{where}.{key}: ignored (not supported locally)")
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise ConfigError(f"{where}.Variables: expected a mapping of NAME: value")
        result = {}
        for key, value in variables.items():
            if isinstance(value, Unresolved):
                text = ""  # the resolver warned; --env-vars may give it
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                text = str(value)
            else:
                raise ConfigError(f"{where}.Variables.{key}: expected text, got {value!r}")
            result[str(key)] = text
        return result

    def _layers(self, declared: Any, where: str, runtime: str) -> list[str]:
        if declared is None:
            return []
        items = self.resolver.resolve(declared, where)
        if not isinstance(items, list):
            raise ConfigError(f"{where}: expected a list of layers")
        directories = []
        for item in items:
            logical_id = self.layer_arns.get(item) if isinstance(item, str) else None
            if logical_id is None:
                if not isinstance(item, Unresolved):
                    self.warn(
                        f"{where}: layer {item} is not a layer of this template; not used (give "
                        "its content as a LayerVersion with a local ContentUri)"
                    )
                continue
            directories.append(self._layer_directory(logical_id, runtime))
        return directories

    def _layer_directory(self, logical_id: str, runtime: str) -> str:
        resource = self.resources[logical_id]
        where = self.where("Resources", logical_id, "Properties")
        properties = self.resolver.resolve(resource.get("Properties") or {}, where)
        content = properties.get("ContentUri")
        if not isinstance(content, str) or content.startswith("s3://"):
            raise ConfigError(
                f"{where}.ContentUri: {short(content) if content is not None else 'missing'}: a "
                "layer is served from a local directory"
            )
        path = self.base / content
        if not path.is_dir():
            raise ConfigError(f"{where}.ContentUri: {str(path)!r} is not a directory")
        compatible = properties.get("CompatibleRuntimes")
        if isinstance(compatible, list) and compatible and runtime not in compatible:
            self.warn(
                f"{where}.CompatibleRuntimes: does not list {runtime}; the layer is used anyway"
            )
        build = (resource.get("Metadata") or {}).get("BuildMethod")
        if build:
            self.warn(
                f"{self.where('Resources', logical_id, 'Metadata', 'BuildMethod')}: {build}: "
                "lambdakit does not build layers; ContentUri is used as it is (after sam build, "
                "serve .aws-sam/build/template.yaml)"
            )
        for key in properties:
            if key not in {"ContentUri", "CompatibleRuntimes", "LayerName", "Description"}:
                self.warn(f"{where}.{key}: ignored (not used locally)")
        return str(path.resolve())

    def _url(self, config: Any, where: str) -> dict[str, Given]:
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: expected a mapping")
        if config.get("AuthType") == "AWS_IAM":
            self.warn(f"{where}.AuthType: AWS_IAM is not checked locally; requests are not signed")
        for key in config:
            if key not in {"AuthType", "InvokeMode"}:
                self.warn(f"{where}.{key}: ignored (not supported locally)")
        # A free port, printed at start ("function URL of NAME").
        return {"url_port": Given(0, self._source(where))}

    def _event_config(self, config: Any, where: str) -> dict[str, Given]:
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: expected a mapping")
        given: dict[str, Given] = {}
        for prop, setting in (
            ("MaximumRetryAttempts", "max_retry_attempts"),
            ("MaximumEventAgeInSeconds", "max_event_age"),
        ):
            if prop in config and not isinstance(config[prop], Unresolved):
                given[setting] = Given(config[prop], self._source(f"{where}.{prop}"))
        destinations = config.get("DestinationConfig") or {}
        for key, setting in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
            target = destinations.get(key) if isinstance(destinations, dict) else None
            if target is None:
                continue
            place = f"{where}.DestinationConfig.{key}"
            name = self._destination(target, place)
            if name:
                given[setting] = Given(f"function:{name}", self._source(place))
        for key in config:
            if key not in {"MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"}:
                self.warn(f"{where}.{key}: ignored (not supported locally)")
        return given

    def _destination(self, target: Any, where: str) -> str:
        """The function a destination names, or "" (and a warning) for any other."""
        kind = target.get("Type") if isinstance(target, dict) else None
        arn = target.get("Destination") if isinstance(target, dict) else None
        if kind == "Lambda" and isinstance(arn, str):
            match = _FUNCTION_ARN.fullmatch(arn)
            name = match.group(1) if match else arn
            if name in self.names.values():
                return name
        if isinstance(arn, Unresolved):
            return ""
        self.warn(
            f"{where}: {kind or 'this'} destination {arn or ''} is not delivered locally (only a "
            "function of the template is)".replace("  ", " ")
        )
        return ""

    def _architecture(self, value: Any, where: str) -> str:
        wanted = value[0] if isinstance(value, list) and value else "x86_64"
        here = _ARCHITECTURES.get(platform.machine().lower(), platform.machine())
        if wanted != here:
            self.warn(f"{where}: {wanted}: the function runs on this machine's {here}")
        return str(wanted)

    def _events(
        self, function: str, logical_id: str, declared: Any, where: str
    ) -> list[sam_apis.ApiEvent]:
        if declared is None:
            return []
        if not isinstance(declared, dict):
            raise ConfigError(f"{where}: expected a mapping of events")
        routes = []
        for event, definition in declared.items():
            place = f"{where}.{event}"
            kind = definition.get("Type") if isinstance(definition, dict) else None
            if isinstance(definition, dict) and sam_apis.is_api_event(kind):
                route = sam_apis.read_event(
                    function, event, definition, self.resolver, place, self.warn
                )
                if route:
                    routes.append(route)
            else:
                self.warn(
                    f"{place}: Type {kind} is not triggered locally; invoke {function} with "
                    "lambdakit invoke (or any Invoke API client)"
                )
        return routes


def merge_globals(shared: Any, own: Any) -> Any:
    """SAM's Globals merge: ``own`` replaces a value, maps merge, global list items come first."""
    if isinstance(shared, dict) and isinstance(own, dict) and not _intrinsic_map(shared, own):
        merged = dict(shared)
        for key, value in own.items():
            merged[key] = merge_globals(shared[key], value) if key in shared else value
        return merged
    if isinstance(shared, list) and isinstance(own, list):
        return [*shared, *own]
    return own


def _intrinsic_map(*values: dict[str, Any]) -> bool:
    return any(
        len(value) == 1 and ("Ref" in value or next(iter(value)).startswith("Fn::"))
        for value in values
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
