"""The one family of serving errors, shared by the client and the stand-in server.

Every error carries TF Serving's canonical status `code` (TensorFlow's error_codes.proto,
numerically gRPC's) and a `message` that is safe to show (no traceback). The subclass says what
a caller can do about it, and is chosen from the code by `error_for_code`, so the stand-in that
raises an error and the client that receives it over REST or gRPC speak of it with one class:

    ServingError
      ServerUnavailable   UNAVAILABLE, DEADLINE_EXCEEDED: down, overloaded or too slow; retry later
      ModelNotFound       NOT_FOUND: no such model, version or label is being served
      RequestRejected     INVALID_ARGUMENT, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...: fix the
                          request (bad input, k out of range, batch or body too large)
      ServerFailed        INTERNAL, UNKNOWN, DATA_LOSS: the server broke; not the caller's fault

HTTP statuses follow TF Serving's ToHTTPStatusCode (model_servers/http_server.cc). Standard
library only: importing it costs nothing and imports no TensorFlow.
"""

import enum
import re
from typing import Optional

# The longest message an error keeps: a server error quoting a 1 MB input is cut to its start
# and its length (a gRPC status over 16 KiB would not even reach the client).
MAX_MESSAGE_CHARS = 1000


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

# The code a REST client reads back from an HTTP status (408/413/431 are the stand-in's own
# limits, 502 a proxy's).
_CODE_OF_HTTP = {
    400: Code.INVALID_ARGUMENT, 401: Code.UNAUTHENTICATED, 403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND, 409: Code.ABORTED,
    413: Code.RESOURCE_EXHAUSTED, 429: Code.RESOURCE_EXHAUSTED,
    431: Code.RESOURCE_EXHAUSTED, 499: Code.CANCELLED, 501: Code.UNIMPLEMENTED,
    502: Code.UNAVAILABLE, 503: Code.UNAVAILABLE, 504: Code.DEADLINE_EXCEEDED,
}


class ServingError(Exception):
    """A request failed with `code`; `message` is safe to show (no traceback)."""

    default_code = Code.UNKNOWN

    def __init__(self, message: str, code: Optional[Code] = None,
                 http_status: Optional[int] = None):
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message)} characters)"
        super().__init__(message)
        self.message = message
        self.code = Code(self.default_code if code is None else code)
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers this error with."""
        return self._http_status or HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


class ServerUnavailable(ServingError):
    """The server cannot be reached, is overloaded, or did not answer within the deadline."""
    default_code = Code.UNAVAILABLE


class ModelNotFound(ServingError):
    """The server answers but serves no such model, version or label."""
    default_code = Code.NOT_FOUND


class RequestRejected(ServingError):
    """The server refused the request (bad input, k out of range, batch or body too large)."""
    default_code = Code.INVALID_ARGUMENT


class ServerFailed(ServingError):
    """The server failed on a request it accepted (INTERNAL, UNKNOWN, DATA_LOSS)."""
    default_code = Code.INTERNAL


class StartupError(RuntimeError):
    """The server could not start: no loadable version, or a port that cannot be bound."""


_CLASS_OF_CODE = {
    Code.UNAVAILABLE: ServerUnavailable, Code.DEADLINE_EXCEEDED: ServerUnavailable,
    Code.NOT_FOUND: ModelNotFound, Code.INTERNAL: ServerFailed,
    Code.UNKNOWN: ServerFailed, Code.DATA_LOSS: ServerFailed,
}


def error_for_code(code: Code, message: str, http_status: Optional[int] = None) -> ServingError:
    """The family member for a canonical code (anything not listed above is RequestRejected)."""
    code = Code(code)
    return _CLASS_OF_CODE.get(code, RequestRejected)(message, code, http_status)


def code_for_http_status(status: int) -> Code:
    """The canonical code behind a REST error status (other 5xx: INTERNAL, other 4xx:
    INVALID_ARGUMENT)."""
    return _CODE_OF_HTTP.get(status, Code.INTERNAL if status >= 500 else Code.INVALID_ARGUMENT)


def invalid_argument(message: str) -> ServingError:
    return RequestRejected(message, Code.INVALID_ARGUMENT)


def not_found(message: str) -> ServingError:
    return ModelNotFound(message, Code.NOT_FOUND)


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
    return error_for_code(code, message)


def echo(text, limit: int = 100) -> str:
    """At most `limit` characters of untrusted text for an error message or a log line, with
    its full length when cut: a 1 MB query is not echoed back or logged in full."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
