"""Errors as TF Serving reports them: a canonical status code plus a message.

The codes are TensorFlow's (tensorflow/core/protobuf/error_codes.proto), numerically gRPC's.
The HTTP statuses follow TF Serving's ToHTTPStatusCode (model_servers/http_server.cc).
"""

import enum
import re
from typing import Optional


class Code(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS = {
    Code.OK: 200, Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403, Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409, Code.OUT_OF_RANGE: 400, Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
}


class StartupError(RuntimeError):
    """The server could not start: no loadable version, or a port that cannot be bound."""


class ServingError(Exception):
    """A request failed with `code`; `message` is safe to show the client (no traceback)."""

    def __init__(self, code: Code, message: str, http_status: Optional[int] = None):
        super().__init__(message)
        self.code = Code(code)
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status or HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


# Eager wrappers around a graph error: "Graph execution error:", "Detected at node X defined at
# (most recent call last):" plus Python frames (or "<stack traces unavailable>"), "[Op:...]".
_GRAPH_PREFIX = re.compile(r"^\s*Graph execution error:\s*", re.S)
_DETECTED_AT = re.compile(r"Detected at node .*? defined at \(most recent call last\):\n"
                          r"(?:<stack traces unavailable>\n|(?:[ \t]+.*\n)*)", re.S)
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


def from_tf_error(error: Exception) -> ServingError:
    """A tf.errors.OpError as TF Serving would report it: its code and the op's own message."""
    code = getattr(error, "error_code", Code.UNKNOWN)
    try:
        code = Code(code)
    except ValueError:
        code = Code.UNKNOWN
    message = getattr(error, "message", None) or str(error)
    message = _OP_SUFFIX.sub("", _DETECTED_AT.sub("", _GRAPH_PREFIX.sub("", message))).strip()
    return ServingError(code, message)
