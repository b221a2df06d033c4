"""The broker address: the daemon's URL form, credentials from the environment, never shown."""

from __future__ import annotations

import pytest

from lambdakit.amqp.uri import BrokerUrlError, broker_address, parse_broker_url


def test_the_daemons_documented_form() -> None:
    address = parse_broker_url(
        "--amqp",
        "amqp://user:s3cr%40t@rabbit:5673/prod?connection_attempts=20&retry_delay=10&heartbeat=0",
        {},
    )
    assert (address.host, address.port, address.vhost) == ("rabbit", 5673, "prod")
    assert (address.username, address.password) == ("user", "s3cr@t")
    assert (address.connection_attempts, address.retry_delay, address.heartbeat) == (20, 10.0, 0)
    assert "s3cr" not in address.redacted() and "s3cr" not in str(address) + repr(address)
    assert address.redacted() == "amqp://user:***@rabbit:5673/prod"
    assert "heartbeat=0" in address.client_url() and "retry_delay" not in address.client_url()


def test_defaults_a_missing_vhost_and_port() -> None:
    address = parse_broker_url("AMQP_URI", "amqp://localhost", {})
    assert (address.port, address.vhost, address.connection_attempts) == (5672, "/", 1)
    assert parse_broker_url("x", "amqps://h", {}).port == 5671


def test_credentials_come_from_the_environment_only_when_the_url_has_none() -> None:
    env = {"AMQP_USERNAME": "lk", "AMQP_PASSWORD": "pw"}
    assert parse_broker_url("x", "amqp://h/", env).password == "pw"
    assert parse_broker_url("x", "amqp://a:b@h/", env).password == "b"
    assert parse_broker_url("x", "amqp://h/", {"AMQP_USERNAME": "lk"}).username == ""


def test_the_flag_wins_over_amqp_uri() -> None:
    env = {"AMQP_URI": "amqp://from-env/"}
    assert broker_address("amqp://from-flag/", env).host == "from-flag"  # type: ignore[union-attr]
    assert broker_address(None, env).host == "from-env"  # type: ignore[union-attr]
    assert broker_address(None, {}) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h/", "must start with amqp://"),
        ("amqp:///vhost", "names no host"),
        ("amqp://h:99999/", "not a valid broker URL"),
        ("amqp://h/?retry_delay=soon", "retry_delay='soon' is not a number"),
        ("amqp://h/?connection_attempts=0", "out of range"),
    ],
)
def test_bad_urls_name_the_flag_and_not_the_password(url: str, problem: str) -> None:
    with pytest.raises(BrokerUrlError) as caught:
        parse_broker_url("--amqp", url.replace("://", "://u:hunter2@", 1), {})
    assert str(caught.value).startswith("--amqp: ")
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_scrub_removes_the_password_from_any_text() -> None:
    address = parse_broker_url("x", "amqp://u:p%2Fw@h/", {})
    assert (
        address.scrub("failed for amqp://u:p%2Fw@h and p/w") == "failed for amqp://u:***@h and ***"
    )


def test_ipv6_hosts_keep_their_brackets_and_heartbeats_round_up() -> None:
    address = parse_broker_url("x", "amqp://u:p@[::1]:5673/?heartbeat=0.5", {})
    assert address.host == "::1" and address.heartbeat == 1
    assert address.client_url().startswith("amqp://u:p@[::1]:5673/")
    assert address.redacted() == "amqp://u:***@[::1]:5673/"
