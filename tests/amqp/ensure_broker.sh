#!/usr/bin/env bash
# `make broker`: make sure a RabbitMQ broker answers on 127.0.0.1:5672 for the AMQP tests.
#
# Already answering: nothing to do.  Installed (Debian's rabbitmq-server) but stopped: start it
# and wait for it.  Not installed: say how to get it; under CI=true that is a failure (the AMQP
# tests must run there), elsewhere the AMQP tests are skipped.
set -uo pipefail

HOST=127.0.0.1
PORT="${LAMBDAKIT_TEST_AMQP_PORT:-5672}"

answers() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

if answers; then
    exit 0
fi

if [ -x /usr/sbin/rabbitmq-server ]; then
    echo "broker: RabbitMQ is installed but not answering on $HOST:$PORT; starting it"
    if command -v service >/dev/null 2>&1 && service rabbitmq-server start >/dev/null 2>&1; then
        :
    else
        # No init system (a container): start it detached, as the package's service would.
        /usr/sbin/rabbitmq-server -detached >/dev/null 2>&1 \
            || (cd / && setsid /usr/sbin/rabbitmq-server >/dev/null 2>&1 &)
    fi
    for _ in $(seq 1 120); do
        if answers; then
            echo "broker: RabbitMQ answers on $HOST:$PORT"
            exit 0
        fi
        sleep 0.5
    done
    echo "broker: RabbitMQ did not come up on $HOST:$PORT within 60 s" \
         "(see /var/log/rabbitmq/)" >&2
    exit 1
fi

echo "broker: no RabbitMQ on $HOST:$PORT and rabbitmq-server is not installed." >&2
echo "broker: install Debian's package (as root): apt-get install rabbitmq-server" >&2
if [ "${CI:-}" = "true" ]; then
    echo "broker: CI=true: the AMQP tests need a broker; failing." >&2
    exit 1
fi
echo "broker: the AMQP tests will be skipped." >&2
exit 0
