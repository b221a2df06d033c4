"""Tests of the AMQP-RPC door (``serve --amqp``), the gateway and scale-out, on a real broker."""
