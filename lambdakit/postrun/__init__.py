"""The post-runner: run a command after each invocation's response, for any runtime.

``lambdakit post-run [--] RUNTIME_COMMAND [ARGS...]`` (parent-process mode) or
``AWS_LAMBDA_EXEC_WRAPPER=/opt/entry.sh`` (the layer).  Built on :mod:`lambdakit.proxy`; see
docs/post-runner.md.
"""
