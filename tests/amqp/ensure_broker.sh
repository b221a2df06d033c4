#!/usr/bin/env bash
# `make broker`: make sure a RabbitMQ broker answers on 127.0.0.1:5672 for the AMQP tests.
#
# Already answering: nothing to do.  Installed (Debian's rabbitmq-server) but stopped: start it
# (as root) and wait up to 60 s for it.  Not installed, or not ours to start: say how to get it;
# under CI=true that is a failure (the AMQP tests must run there), elsewhere the AMQP tests are
# skipped.
#
# For trying the other branches without touching the machine's broker:
#   LAMBDAKIT_TEST_AMQP_PORT     the port to check (default 5672)
#   LAMBDAKIT_TEST_RABBITMQ_SERVER  the server to look for (default /usr/sbin/rabbitmq-server)
#   LAMBDAKIT_TEST_BROKER_WAIT   seconds to wait for it to answer (default 60)
set -uo pipefail

HOST=127.0.0.1
PORT="${LAMBDAKIT_TEST_AMQP_PORT:-5672}"
SERVER="${LAMBDAKIT_TEST_RABBITMQ_SERVER:-/usr/sbin/rabbitmq-server}"
WAIT="${LAMBDAKIT_TEST_BROKER_WAIT:-60}"

answers() { timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }

# No broker and none we can start: a failure under CI, a skip elsewhere.
give_up() {
    local line
    for line in "$@"; do echo "broker: $line" >&2; done
    if [ "${CI:-}" = "true" ]; then
        echo "broker: CI=true: the AMQP tests need a broker; failing." >&2
        exit 1
    fi
    echo "broker: the AMQP tests will be skipped." >&2
    exit 0
}

if answers; then
    exit 0
fi

if [ ! -x "$SERVER" ]; then
    give_up "no RabbitMQ on $HOST:$PORT, and rabbitmq-server is not installed." \
        "install Debian's package (as root): apt-get install rabbitmq-server"
fi

if [ "$(id -u)" != 0 ]; then
    give_up "RabbitMQ is installed but not answering on $HOST:$PORT, and only root can start it:" \
        "sudo service rabbitmq-server start   (or: sudo make broker)"
fi

echo "broker: RabbitMQ is installed but not answering on $HOST:$PORT; starting it (up to ${WAIT} s)"
# The init script (or systemd) when there is one; else as Debian's package starts it: its
# wrapper, run as root, runs the server as the rabbitmq user, detached.
if ! timeout 90 service rabbitmq-server start >/dev/null 2>&1; then
    (cd / && "$SERVER" -detached </dev/null >/dev/null 2>&1) || true
fi
deadline=$((SECONDS + WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
    if answers; then
        echo "broker: RabbitMQ answers on $HOST:$PORT"
        exit 0
    fi
    sleep 0.5
done
echo "broker: RabbitMQ did not answer on $HOST:$PORT within ${WAIT} s (see /var/log/rabbitmq/)" >&2
exit 1
