"""What the explorer accepts from a browser before it talks to a server, and what it tells a
visitor when a call fails (issue 14: the explorer must not be a way into the network).

- A deployed explorer is pinned: started with a server (`towergraph ui --server`, or
  TOWERGRAPH_SERVER as the Kubernetes manifests and the image set it), its connection cannot be
  changed from the page. Only a local run offers the connection fields, and even there
  check_server() accepts nothing but an http, https or grpc URL of a host and port.
- Model names follow TF Serving's own rule for the name in `/v1/models/<name>` (a path segment
  without '/' or ':'), narrowed here to an allow-list: a letter or digit, then letters, digits,
  '.', '_' or '-', at most MAX_MODEL_NAME characters. No '/', '?', '#', '%', whitespace or
  control character can reach a URL.
- A failed call is shown by its kind only (public_message): the server's answer, which may be
  anything a wrong address returns, is logged on the server side and never shown to a visitor.
"""

import logging
import re
from urllib.parse import urlsplit

from serving.client import (ModelNotFound, RequestRejected, ServerUnavailable, ServingError,
                            UnknownItems)

MAX_MODEL_NAME = 64
MAX_SERVER_LENGTH = 256
MAX_ITEM_ID = 128
SERVER_SCHEMES = ("http", "https", "grpc")

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

log = logging.getLogger("towergraph.ui")


class Rejected(ValueError):
    """Input the explorer refuses; the message names what was wrong and what is accepted."""


def check_model_name(name: str) -> str:
    name = str(name).strip()
    if not name:
        raise Rejected("Enter a model name: the name of the served model (towergraph by default).")
    if len(name) > MAX_MODEL_NAME:
        raise Rejected(f"A model name has at most {MAX_MODEL_NAME} characters.")
    if not _MODEL_NAME.fullmatch(name):
        raise Rejected("A model name starts with a letter or digit and holds only letters, "
                       "digits, '.', '_' and '-'.")
    return name


def check_server(server: str) -> str:
    """An http://, https:// or grpc:// URL of a host and port, nothing more (no user, path,
    query or fragment); returned without a trailing '/'."""
    server = str(server).strip()
    if not server:
        raise Rejected("Enter the address of a TF Serving server, e.g. http://localhost:8501.")
    if len(server) > MAX_SERVER_LENGTH:
        raise Rejected(f"A server address has at most {MAX_SERVER_LENGTH} characters.")
    if _CONTROL_OR_SPACE.search(server):
        raise Rejected("A server address holds no spaces or control characters.")
    parts = urlsplit(server)
    if parts.scheme.lower() not in SERVER_SCHEMES or not server.lower().startswith(
            f"{parts.scheme.lower()}://"):
        raise Rejected("The server address must start with http://, https:// or grpc://.")
    try:
        port = parts.port
    except ValueError:
        raise Rejected("The server address has an invalid port.") from None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if "@" in parts.netloc or not _HOST.fullmatch(host or ""):
        raise Rejected("The server address must name a host, e.g. http://localhost:8501.")
    if parts.scheme.lower() == "grpc" and port is None:
        raise Rejected("A gRPC server address needs a port, e.g. grpc://localhost:8500.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in server \
            or "#" in server:
        raise Rejected("The server address is a scheme, a host and a port only, without a "
                       "path, query or fragment.")
    return server.rstrip("/")


def check_item_id(item: str) -> str:
    """An item id from a link (?item=) or a click: bounded, printable, one line."""
    item = str(item).strip()
    if not item or len(item) > MAX_ITEM_ID or _CONTROL.search(item):
        raise Rejected(f"An item id is 1 to {MAX_ITEM_ID} printable characters.")
    return item


def public_message(error: BaseException, what: str) -> str:
    """What a visitor reads when `what` (e.g. "Search") failed: the kind of failure, never the
    server's answer. The full error goes to the server's log."""
    log.warning("%s failed: %s: %s", what, type(error).__name__, error)
    if isinstance(error, UnknownItems):
        return f"{what} failed: the model does not know {len(error.item_ids)} of the items."
    if isinstance(error, ServerUnavailable):
        return f"{what} failed: the model server did not answer (down, or too slow)."
    if isinstance(error, ModelNotFound):
        return f"{what} failed: the server does not serve this model (any more)."
    if isinstance(error, RequestRejected):
        return f"{what} failed: the model server refused the request."
    if isinstance(error, ServingError):
        return f"{what} failed: the model server answered with an error."
    return f"{what} failed: {type(error).__name__}."
