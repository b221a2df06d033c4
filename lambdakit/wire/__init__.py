"""The Lambda execution-environment interfaces, spelled once.

Every path, header name, error type, limit and payload shape of the Invoke API, the Runtime API
and the Extensions/Telemetry APIs lives in this package; servers and clients import it and no
other module spells them.  Stdlib only: the runtime client imports it during every cold start.

Sources (cited beside each constant): the Runtime API page
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html, the Invoke API reference
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html, and AWS's Runtime Interface
Emulator where the docs are silent.
"""
