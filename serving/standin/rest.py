"""TF Serving's REST API (model_servers/http_rest_api_handler.cc) as a Starlette app.

  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature_def metadata
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or columnar predict
  POST ...:classify, ...:regress                              400: Predict signatures only

Paths are matched with TF Serving's own regular expressions; every error is {"error": "..."}
with TF Serving's HTTP status for its code. Bodies over --max-request-bytes get 413.
"""

import asyncio
import logging
import re
from typing import Optional

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.standin import rest_json
from serving.errors import Code, ServingError, echo, error_for_code, invalid_argument
from serving.standin.service import SIGNATURE_DEF_FIELD, ServingCore, internal_error

LOG = logging.getLogger("serving.standin")

_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                           r":(classify|regress|predict)", re.IGNORECASE)
_STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                          r"(?:/(metadata))?", re.IGNORECASE)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2 ** 63 - 1
_INT64_DIGITS = len(str(_INT64_MAX))


def _json_response(document, status: int = 200) -> Response:
    return Response(rest_json.dumps(document), status_code=status,
                    media_type="application/json")


def _error_response(error: ServingError) -> Response:
    response = _json_response({"error": error.message}, error.http_status)
    if error.http_status in (408, 413):  # the body was not read to its end: close
        response.headers["connection"] = "close"
    return response


def _version(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    if len(text) > _INT64_DIGITS or int(text) > _INT64_MAX:  # int() of 5,000 digits raises
        raise invalid_argument(f"Failed to convert version: {echo(text, 30)} to numeric.")
    return int(text)


class RestApi:
    def __init__(self, core: ServingCore, body_timeout: float = 30.0):
        self.core = core
        self.body_timeout = body_timeout

    # -- handlers (run in a worker thread) ------------------------------------------------------

    def status(self, name, version, label) -> dict:
        response = self.core.model_status(name, version, label)
        return json_format.MessageToDict(response, including_default_value_fields=True)

    def metadata(self, name, version, label) -> dict:
        response = self.core.model_metadata(name, version, label)
        options = dict(including_default_value_fields=True, preserving_proto_field_name=True)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_def_map)
        return {"model_spec": json_format.MessageToDict(response.model_spec, **options),
                "metadata": {SIGNATURE_DEF_FIELD: json_format.MessageToDict(signature_def_map,
                                                                            **options)}}

    def predict(self, name, version, label, body: bytes) -> dict:
        document = rest_json.parse_body(body)
        target = self.core.target(name, version, label, rest_json.signature_name(document))
        inputs, request_format = rest_json.parse_inputs(document, target.signature.inputs)
        result = self.core.predict(target, inputs)
        return rest_json.predict_response(result.outputs, request_format)

    def unsupported(self, method, name, version, label, body: bytes) -> dict:
        document = rest_json.parse_body(body)
        self.core.unsupported(method, name, version, label, rest_json.signature_name(document))
        return {}

    # -- dispatch -------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except ServingError as error:
            return _error_response(error)
        except ClientDisconnect:  # the client went away: nobody to answer, nothing to fix
            LOG.debug("REST %s %s: client disconnected", request.method, echo(request.url.path))
            return Response(status_code=499)
        except Exception as error:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("REST %s %s failed", request.method, echo(request.url.path))
            return _error_response(internal_error(error))

    async def _dispatch(self, request: Request) -> Response:
        method, path = request.method, request.scope["path"]
        if not _API_PATH.fullmatch(path):
            return _json_response({"error": f"Not found: {path}"}, 404)
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = _PREDICT_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version_text, label, verb = match.groups()
            version = _version(version_text)
            body = await self._read_body(request)
            verb = verb.lower()
            if verb == "predict":
                document = await run_in_threadpool(self.predict, name, version, label, body)
            else:
                document = await run_in_threadpool(self.unsupported, verb, name, version, label,
                                                   body)
            return _json_response(document)
        if method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version_text, label, metadata = match.groups()
            if not name:
                raise invalid_argument("Missing model name in request.")
            handler = self.metadata if metadata else self.status
            return _json_response(await run_in_threadpool(handler, name,
                                                          _version(version_text), label))
        raise malformed

    async def _read_body(self, request: Request) -> bytes:
        limit = self.core.limits.max_request_bytes
        too_large = error_for_code(
            Code.RESOURCE_EXHAUSTED, f"Request body is larger than the limit of {limit} bytes of "
            f"this server (--max-request-bytes)", http_status=413)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise too_large

        try:
            await asyncio.wait_for(read(), self.body_timeout)
        except asyncio.TimeoutError:
            raise error_for_code(Code.DEADLINE_EXCEEDED, f"Request body not received within "
                                 f"{self.body_timeout:g} s", http_status=408) from None
        return bytes(body)


def create_app(core: ServingCore, body_timeout: float = 30.0) -> Starlette:
    """The REST app; a request body must arrive within `body_timeout` seconds (else 408)."""
    api = RestApi(core, body_timeout)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", api.handle, methods=methods)])
