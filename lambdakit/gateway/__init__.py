"""``lambdakit gateway``: a stateless Invoke API that hands invocations to workers over RabbitMQ.

``api.py`` is the request handler, ``command.py`` the command line and the ordered shutdown.
See ``docs/scale-out.md``.
"""
