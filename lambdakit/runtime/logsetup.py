"""The root ``logging`` handler of a Lambda function (imported only once ``logging`` is).

Every record gets ``aws_request_id`` and ``tenant_id`` attributes (a record factory, so user
formatters can use ``%(aws_request_id)s`` too).  Text format, as awslambdaric:
``[%(levelname)s]\\t%(asctime)s.%(msecs)03dZ\\t%(aws_request_id)s\\t%(message)s``.  JSON format
has awslambdaric's keys (``timestamp``, ``level``, ``message``, ``logger``, ``requestId``,
``tenantId``, the error keys and ``location`` with ``exc_info``, and any ``extra=`` fields),
with millisecond timestamps.
"""

from __future__ import annotations

import logging
import sys
import time

from lambdakit.runtime import fastjson
from lambdakit.runtime.logs import timestamp
from lambdakit.runtime.scope import SCOPE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"
_TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"
#: LogRecord attributes that are not ``extra=`` fields.
_RESERVED = frozenset(
    logging.makeLogRecord({}).__dict__.keys()
    | {"message", "asctime", "aws_request_id", "tenant_id", "taskName"}
)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT, _TEXT_DATEFMT)
        self.converter = time.gmtime  # UTC, for the "Z" suffix (this formatter only)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record) + "\n"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        message = (
            record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage()
        )
        result: dict[str, object] = {
            "timestamp": timestamp(record.created),
            "level": logging.getLevelName(level),
            "message": message,
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", SCOPE.request_id),
        }
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            result["tenantId"] = tenant_id
        if record.exc_info and record.exc_info[0] is not None:
            import traceback

            _, exc, tb = record.exc_info
            result["errorType"] = type(exc).__name__
            result["errorMessage"] = str(exc)
            result["stackTrace"] = traceback.format_tb(tb)
            result["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in result and value is not None:
                result[key] = value
        return fastjson.dumps(result, default=str) + "\n"


class StdoutHandler(logging.Handler):
    """Writes formatted records to the current ``sys.stdout`` (unbuffered by the runtime)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


def configure(module: ModuleType, *, json_logs: bool, level: str | None) -> None:
    """Install the Lambda handler on the root logger and stamp records with the request id."""
    del module  # the same object as ``logging`` here; kept for the import hook's call shape
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.aws_request_id = SCOPE.request_id
        record.tenant_id = SCOPE.tenant_id
        return record

    logging.setLogRecordFactory(factory)
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
