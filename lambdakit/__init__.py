"""lambdakit: a toolkit for the AWS Lambda execution environment."""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lambdakit.runtime.tasks import after_response

__all__ = ["__version__", "after_response"]


def __getattr__(name: str) -> object:
    # Lazy, so that ``import lambdakit`` stays nearly free (the runtime imports it at cold start).
    if name == "after_response":
        from lambdakit.runtime.scope import SCOPE
        from lambdakit.runtime.tasks import after_response

        if not SCOPE.serving:
            # Another runtime client (awslambdaric) is importing the handler module: Init, the
            # one moment lambdakit.extensions may register the internal extension that runs
            # the tasks there.
            import lambdakit.extensions  # noqa: F401

        return after_response
    raise AttributeError(f"module 'lambdakit' has no attribute {name!r}")
