"""The broker address: ``--amqp URL`` or ``AMQP_URI``, read once, its secrets never shown.

The form is the Lambda Runtime API Daemon's:
``amqp://user:pass@host:port/vhost?connection_attempts=20&retry_delay=10&heartbeat=0``.  A URL
without user info takes ``AMQP_USERNAME`` / ``AMQP_PASSWORD`` when both are set (else the
broker's guest/guest); a missing vhost is ``/``.  ``connection_attempts`` (default 1) and
``retry_delay`` (seconds, default 2) govern the start: that many attempts, that far apart, before
the command gives up with one line.  Once connected, a lost connection is retried forever, with a
backoff that starts at ``retry_delay`` and doubles up to 30 s.  ``heartbeat`` (seconds, default
10; 0 turns heartbeats off) and any other query parameter (``cafile``, ``certfile``, ``keyfile``
and ``no_verify_ssl`` for ``amqps://``) go to the client library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
DEFAULT_HEARTBEAT = 10
DEFAULT_ATTEMPTS = 1
DEFAULT_RETRY_DELAY = 2.0
#: The longest wait between two reconnection attempts, seconds.
MAX_BACKOFF = 30.0
#: The variables the daemon reads; none of them ever reaches a function.
URI_VARIABLE = "AMQP_URI"
USERNAME_VARIABLE = "AMQP_USERNAME"
PASSWORD_VARIABLE = "AMQP_PASSWORD"
BROKER_VARIABLES = (URI_VARIABLE, USERNAME_VARIABLE, PASSWORD_VARIABLE)
_OURS = ("connection_attempts", "retry_delay")


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message names the flag or variable, not the secret."""


class BrokerUnavailable(Exception):
    """The broker could not be reached at start; the message names it without credentials."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and how to reach it; ``str()`` never shows the password."""

    scheme: str
    host: str
    port: int
    vhost: str
    username: str = ""
    password: str = field(default="", repr=False)
    heartbeat: int = DEFAULT_HEARTBEAT
    connection_attempts: int = DEFAULT_ATTEMPTS
    retry_delay: float = DEFAULT_RETRY_DELAY
    #: Query parameters passed through to the client library (TLS files and the like).
    options: tuple[tuple[str, str], ...] = ()

    def client_url(self, connection_name: str = "") -> str:
        """The URL the client library connects with (credentials included: never log it)."""
        userinfo = ""
        if self.username or self.password:
            userinfo = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@"
        query = [*self.options, ("heartbeat", str(self.heartbeat))]
        if connection_name:
            query.append(("name", connection_name))
        vhost = quote(self.vhost, safe="")
        return f"{self.scheme}://{userinfo}{self._netloc}/{vhost}?{urlencode(query)}"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"{host}:{self.port}"

    def redacted(self) -> str:
        """The address for logs and messages: ``amqp://user:***@host:port/vhost``."""
        user = f"{self.username}:***@" if self.username else ""
        vhost = "" if self.vhost == "/" else quote(self.vhost, safe="")
        return f"{self.scheme}://{user}{self._netloc}/{vhost}"

    def scrub(self, text: str) -> str:
        """``text`` with the password (plain or URL-quoted) replaced by ``***``."""
        for secret in {self.password, quote(self.password, safe="")}:
            if secret:
                text = text.replace(secret, "***")
        return text

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnection attempt ``attempt`` (1, 2, ...)."""
        return min(MAX_BACKOFF, max(self.retry_delay, 0.1) * 2.0 ** max(0, attempt - 1))

    def __str__(self) -> str:
        return self.redacted()


def broker_address(
    flag_value: str | None, environ: Mapping[str, str], flag: str = "--amqp"
) -> BrokerAddress | None:
    """The address from ``flag_value``, else ``AMQP_URI``; None when neither is set."""
    if flag_value:
        return parse_broker_url(flag, flag_value, environ)
    if environ.get(URI_VARIABLE):
        return parse_broker_url(URI_VARIABLE, environ[URI_VARIABLE], environ)
    return None


def parse_broker_url(key: str, url: str, environ: Mapping[str, str]) -> BrokerAddress:
    """Validate ``url``; errors name ``key`` and never repeat the URL (it may hold a password)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(f"{key}: not a valid broker URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(f"{key}: the URL must start with amqp:// or amqps://")
    if not parts.hostname:
        raise BrokerUrlError(f"{key}: the URL names no host")
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if not username and not password:
        env_user = environ.get(USERNAME_VARIABLE, "")
        env_password = environ.get(PASSWORD_VARIABLE, "")
        if env_user and env_password:
            username, password = env_user, env_password
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) or "/"
    query = parse_qsl(parts.query, keep_blank_values=True)
    known = dict(query)
    options = tuple((k, v) for k, v in query if k not in (*_OURS, "heartbeat", "name"))
    return BrokerAddress(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        vhost=vhost,
        username=username,
        password=password,
        # Whole seconds on the wire; a fraction rounds up rather than turning heartbeats off.
        heartbeat=math.ceil(
            _number(key, "heartbeat", known.get("heartbeat"), DEFAULT_HEARTBEAT, 0)
        ),
        connection_attempts=int(
            _number(key, "connection_attempts", known.get("connection_attempts"), 1, 1)
        ),
        retry_delay=_number(key, "retry_delay", known.get("retry_delay"), DEFAULT_RETRY_DELAY, 0),
        options=options,
    )


def _number(key: str, name: str, raw: str | None, default: float, low: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BrokerUrlError(f"{key}: {name}={raw!r} is not a number") from None
    if not low <= value <= 86_400:  # NaN fails this too
        raise BrokerUrlError(f"{key}: {name}={raw!r} is out of range ({low:g} to 86400)")
    return value
