"""RabbitMQ as lambdakit's distributed engine, in the Lambda Runtime API Daemon's AMQP-RPC contract.

``uri.py`` reads the broker address (``--amqp`` or ``AMQP_URI``) and never shows its secrets,
``contract.py`` is the wire contract with no I/O (request properties and headers in, reply
properties out), ``link.py`` keeps one connection to the broker alive with backoff, and
``queues.py`` declares a function's queue as every consumer of it must.  ``serve --amqp`` consumes
(:mod:`lambdakit.emulator.doors.amqp_rpc`); ``lambdakit gateway`` publishes
(:mod:`lambdakit.gateway`).  See ``docs/scale-out.md``.
"""
