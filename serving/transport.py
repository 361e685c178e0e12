"""The wire: TF Serving's REST and gRPC APIs behind one small interface.

A transport sends a signature's inputs as numpy arrays and returns its outputs as numpy arrays;
it knows nothing about items or graphs. Errors are the serving family of serving/errors.py,
chosen from TF Serving's status code; tensors are converted by serving/tensors.py, the same code
the stand-in server uses. Each transport says what it talks to: `protocol` ("REST", "gRPC" or
"SavedModel") and `address` (the URL, grpc://host:port, or the model directory).

Time is bounded by a deadline, not a per-attempt timeout: `timeout` (seconds, default 10) is the
most one call may take, retries included; a call that runs out of it raises ServerUnavailable.
Only what cannot have been served is retried, with exponential backoff (`backoff` seconds,
doubled each time) up to `retries` more attempts within the deadline: a connection that could
not be made, and 503 / UNAVAILABLE. A server that accepted the request and hangs is not asked
again. gRPC enforces the deadline across its own retry policy; REST uses the small loop in
RestTransport._send (urllib3's Retry has no overall deadline).
"""

import json
import os
import time
from typing import Dict, List, Optional, Protocol, Tuple
from urllib.parse import quote, urlparse

import numpy as np
import requests

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS, before TensorFlow; imports nothing)
from serving.errors import (Code, ModelNotFound, RequestRejected, ServerUnavailable,  # noqa: F401
                            ServingError, code_for_http_status, echo, error_for_code)
from towergraph.constants import (DEFAULT_MODEL_NAME, PROTOCOL_GRPC, PROTOCOL_REST,
                                  PROTOCOL_SAVED_MODEL)

DEFAULT_TIMEOUT = 10.0    # seconds: the deadline of one call, retries included
DEFAULT_RETRIES = 3       # extra attempts on connection failures and 503 / UNAVAILABLE
DEFAULT_BACKOFF = 0.2     # seconds before the first retry, doubled at each one
CONNECT_TIMEOUT = 3.0     # seconds to open a TCP connection (never beyond the deadline)
SCHEMES = ("http", "https", "grpc")


class AddressError(ValueError):
    """A server address the client cannot use (unknown scheme, no host, bad port)."""


class Transport(Protocol):
    model_name: str
    protocol: str   # "REST", "gRPC" or "SavedModel"
    address: str    # what it talks to: URL, grpc://host:port, or a model directory
    timeout: float  # the deadline of one call, seconds

    def predict(self, signature: str, inputs: Dict[str, np.ndarray],
                deadline: Optional[float] = None) -> Dict[str, np.ndarray]:
        """deadline: time.monotonic() by which to give up (default: now + timeout)."""
        ...

    def versions(self) -> List[Tuple[int, str]]:
        """(version, state) of every version the server knows, newest first."""
        ...

    def close(self) -> None:
        ...


def _deadline(deadline: Optional[float], timeout: float) -> float:
    return time.monotonic() + timeout if deadline is None else deadline


class RestTransport:
    """TF Serving's REST API: columnar `inputs` requests, one pooled HTTP session."""

    protocol = PROTOCOL_REST

    def __init__(self, base_url: str, model_name: str, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF):
        if not timeout > 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, retries and backoff >= 0")
        self.base_url = self.address = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = requests.Session()

    @property
    def _model_url(self) -> str:
        return f"{self.base_url}/v1/models/{quote(self.model_name, safe='')}"

    def _send(self, method: str, url: str, deadline: Optional[float] = None, **kwargs) -> dict:
        deadline = _deadline(deadline, self.timeout)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerUnavailable(f"TF Serving at {self.base_url} did not answer within "
                                        f"the deadline ({self.timeout:g} s)",
                                        Code.DEADLINE_EXCEEDED)
            try:
                response = self.session.request(
                    method, url, timeout=(min(CONNECT_TIMEOUT, remaining), remaining), **kwargs)
            except requests.ConnectTimeout:
                failure = ServerUnavailable(f"TF Serving at {self.base_url} is unreachable: "
                                            f"no connection within {CONNECT_TIMEOUT:g} s")
            except requests.Timeout:  # sent, but no answer in time: asking again would not help
                raise ServerUnavailable(f"TF Serving at {self.base_url} did not answer within "
                                        f"the deadline ({self.timeout:g} s)",
                                        Code.DEADLINE_EXCEEDED) from None
            except requests.ConnectionError as error:
                failure = ServerUnavailable(f"TF Serving at {self.base_url} is unreachable: "
                                            f"{type(error).__name__}")
            else:
                if response.status_code != 503:
                    return self._body(response, url)
                failure = self._error(response, url)
            if attempt >= self.retries:
                raise failure
            pause = self.backoff * 2 ** attempt
            if time.monotonic() + pause >= deadline:
                raise failure
            time.sleep(pause)
            attempt += 1

    def _body(self, response: requests.Response, url: str) -> dict:
        if response.status_code != 200:
            raise self._error(response, url)
        try:
            return response.json()
        except ValueError:
            raise error_for_code(Code.INTERNAL, f"{url}: the answer is not JSON") from None

    def _error(self, response: requests.Response, url: str) -> ServingError:
        try:
            body = response.json()
        except ValueError:
            # Not TF Serving's error shape: say so, without echoing what some other server sent.
            kind = response.headers.get("Content-Type", "unknown type")
            body = {"error": f"not a TF Serving error (HTTP {response.status_code}, "
                             f"{len(response.content)} bytes of {kind})"}
        code = code_for_http_status(response.status_code)
        message = str(body.get("error", "")) if isinstance(body, dict) else ""
        if code == Code.NOT_FOUND:
            message = f"model {self.model_name!r} at {self.base_url}: {message or 'not found'}"
        elif code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED):
            message = f"TF Serving at {self.base_url} answered {response.status_code}: {message}"
        else:
            message = f"{url}: {message or response.status_code}"
        return error_for_code(code, message, response.status_code)

    def predict(self, signature: str, inputs: Dict[str, np.ndarray],
                deadline: Optional[float] = None) -> Dict[str, np.ndarray]:
        payload = {"signature_name": signature,
                   "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}
        body = self._send("POST", f"{self._model_url}:predict", deadline,
                          data=json.dumps(payload), headers={"Content-Type": "application/json"})
        outputs = body["outputs"]
        # TF Serving returns a bare value when the signature has a single output.
        if not isinstance(outputs, dict):
            raise RequestRejected(f"signature {signature!r} returned a single unnamed output")
        return {name: np.asarray(value, dtype=object if _is_text(value) else None)
                for name, value in outputs.items()}

    def versions(self) -> List[Tuple[int, str]]:
        body = self._send("GET", self._model_url)
        return sorted(((int(entry["version"]), entry["state"])
                       for entry in body.get("model_version_status", [])), reverse=True)

    def close(self) -> None:
        self.session.close()


def _is_text(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str)


class GrpcTransport:
    """TF Serving's gRPC API (PredictionService, ModelService) over one channel.

    TensorFlow is imported only here: tensor protos need it, and a REST-only client (the UI
    image) should not pay for it.
    """

    protocol = PROTOCOL_GRPC

    def __init__(self, target: str, model_name: str, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
                 max_message_bytes: int = 64 * 1024 * 1024):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if not timeout > 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, retries and backoff >= 0")
        self._grpc = grpc
        self.target = target
        self.address = f"grpc://{target}"
        self.model_name = model_name
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if retries:  # gRPC's retry policy: within the call's deadline, UNAVAILABLE only
            attempts = min(retries + 1, 5)  # gRPC caps maxAttempts at 5
            policy = {"methodConfig": [{
                "name": [{"service": "tensorflow.serving.PredictionService"},
                         {"service": "tensorflow.serving.ModelService"}],
                "retryPolicy": {"maxAttempts": attempts,
                                "initialBackoff": f"{max(backoff, 0.001)}s",
                                "maxBackoff": f"{max(backoff, 0.001) * 2 ** retries}s",
                                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
            }]}
            options += [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(policy))]
        else:
            options += [("grpc.enable_retries", 0)]
        self.channel = grpc.insecure_channel(target, options=options)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _call(self, method, request, deadline: Optional[float] = None):
        grpc = self._grpc
        remaining = _deadline(deadline, self.timeout) - time.monotonic()
        try:
            if remaining <= 0:
                raise ServerUnavailable(f"TF Serving at {self.target} did not answer within "
                                        f"the deadline ({self.timeout:g} s)",
                                        Code.DEADLINE_EXCEEDED)
            return method(request, timeout=remaining)
        except grpc.RpcError as error:
            code, details = Code(error.code().value[0]), error.details() or ""
            if code == Code.DEADLINE_EXCEEDED:
                message = (f"TF Serving at {self.target} did not answer within the deadline "
                           f"({self.timeout:g} s)")
            elif code == Code.UNAVAILABLE:
                message = f"TF Serving at {self.target} is unreachable: {code.name}"
            elif code == Code.NOT_FOUND:
                message = f"model {self.model_name!r} at {self.target}: {details}"
            else:
                message = f"{code.name}: {details}"
            raise error_for_code(code, message) from None

    def predict(self, signature: str, inputs: Dict[str, np.ndarray],
                deadline: Optional[float] = None) -> Dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        from serving.tensors import decode_text, from_tensor_proto, to_tensor_proto

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(to_tensor_proto(value))
        response = self._call(self.predictions.Predict, request, deadline)
        return {name: decode_text(from_tensor_proto(f"output '{name}'", proto))
                for name, proto in response.outputs.items()}

    def versions(self) -> List[Tuple[int, str]]:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        response = self._call(self.models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return sorted(((entry.version, states.Name(entry.state))
                       for entry in response.model_version_status), reverse=True)

    def close(self) -> None:
        self.channel.close()


class SavedModelTransport:
    """The SavedModel itself, in this process: no server (notebooks, tests, batch jobs).

    Same inputs, outputs and errors as the servers (the stand-in's own signature calls).
    """

    protocol = PROTOCOL_SAVED_MODEL
    timeout = DEFAULT_TIMEOUT  # not enforced: the call runs in this process

    def __init__(self, model_dir: str, model_name: str = DEFAULT_MODEL_NAME):
        import tensorflow as tf

        self.model_dir = self.address = model_dir
        self.model_name = model_name
        self.model = tf.saved_model.load(model_dir)

    def predict(self, signature: str, inputs: Dict[str, np.ndarray],
                deadline: Optional[float] = None) -> Dict[str, np.ndarray]:
        from serving.tensors import call_signature, decode_text, find_signature

        function = find_signature(self.model.signatures, signature)
        return {name: decode_text(value)
                for name, value in call_signature(function, inputs).items()}

    def versions(self) -> List[Tuple[int, str]]:
        name = os.path.basename(os.path.normpath(self.model_dir))
        return [(int(name) if name.isdigit() else 0, "AVAILABLE")]

    def close(self) -> None:
        pass


def open_transport(server: str, model_name: str, protocol: Optional[str] = None,
                   **options) -> Transport:
    """`http(s)://host:8501` (REST), `grpc://host:8500` (or `host:port` with protocol="grpc"),
    or a SavedModel directory (protocol="saved_model"). options: timeout, retries, backoff.
    Any other scheme (ftp://, file://, ...) is an AddressError, never guessed to be http."""
    if protocol == "saved_model":
        return SavedModelTransport(server, model_name)
    if protocol not in (None, "rest", "grpc"):
        raise AddressError(f"protocol must be rest or grpc, not {echo(protocol)}")
    server = server.strip()
    parsed = urlparse(server if "://" in server else f"//{server}")
    if "://" in server and parsed.scheme.lower() not in SCHEMES:
        raise AddressError(f"server address {echo(server)}: scheme {echo(parsed.scheme, 20)} is "
                           f"not supported; use http://host:port, https://host:port (REST) or "
                           f"grpc://host:port (gRPC)")
    try:
        port = parsed.port
    except ValueError:
        raise AddressError(f"server address {echo(server)}: the port must be 0..65535") from None
    protocol = protocol or ("grpc" if parsed.scheme.lower() == "grpc" else "rest")
    if protocol == "grpc":
        if not parsed.hostname or not port:
            raise AddressError(f"gRPC server address must be grpc://host:port, not "
                               f"{echo(server)}")
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return GrpcTransport(f"{host}:{port}", model_name, **options)
    if not parsed.hostname or parsed.scheme.lower() == "grpc":
        raise AddressError(f"REST server address must look like http://host:8501, not "
                           f"{echo(server)}")
    scheme = parsed.scheme.lower() or "http"
    return RestTransport(f"{scheme}://{parsed.netloc}", model_name, **options)
