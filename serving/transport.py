"""The wire: TF Serving's REST and gRPC APIs behind one small interface.

A transport sends a signature's inputs as numpy arrays and returns its outputs as numpy arrays;
it knows nothing about items or graphs. Retries with backoff come from the libraries
(urllib3's Retry, gRPC's retry policy), not from loops of our own. Errors are the serving family
of serving/errors.py, chosen from TF Serving's status code; tensors are converted by
serving/tensors.py, the same code the stand-in server uses.

Each transport says what it talks to: `protocol` ("REST", "gRPC" or "SavedModel") and
`address` (the URL, grpc://host:port, or the model directory).
"""

import json
import os
from typing import Dict, List, Optional, Protocol, Tuple
from urllib.parse import urlparse

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS, before TensorFlow; imports nothing)
from serving.errors import (Code, ModelNotFound, RequestRejected, ServerUnavailable,  # noqa: F401
                            ServingError, code_for_http_status, error_for_code)
from towergraph.constants import (DEFAULT_MODEL_NAME, PROTOCOL_GRPC, PROTOCOL_REST,
                                  PROTOCOL_SAVED_MODEL)

DEFAULT_TIMEOUT = 10.0    # seconds per request
DEFAULT_RETRIES = 3       # extra attempts on transient failures
DEFAULT_BACKOFF = 0.2     # seconds, doubled at each retry
# Statuses a load balancer or a restarting server answers with; worth another try.
_TRANSIENT_HTTP = (502, 503, 504)


class Transport(Protocol):
    model_name: str
    protocol: str   # "REST", "gRPC" or "SavedModel"
    address: str    # what it talks to: URL, grpc://host:port, or a model directory

    def predict(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        ...

    def versions(self) -> List[Tuple[int, str]]:
        """(version, state) of every version the server knows, newest first."""
        ...

    def close(self) -> None:
        ...


class RestTransport:
    """TF Serving's REST API: columnar `inputs` requests, one pooled HTTP session."""

    protocol = PROTOCOL_REST

    def __init__(self, base_url: str, model_name: str, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF):
        self.base_url = self.address = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=backoff, status_forcelist=_TRANSIENT_HTTP,
                      allowed_methods=None,  # predict is a POST but has no side effects
                      raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    @property
    def _model_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.model_name}"

    def _send(self, method: str, url: str, **kwargs) -> dict:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ServerUnavailable(f"TF Serving at {self.base_url} is unreachable: "
                                    f"{type(error).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        if response.status_code == 200:
            return body
        code = code_for_http_status(response.status_code)
        message = body.get("error", "") if isinstance(body, dict) else ""
        if code == Code.NOT_FOUND:
            message = f"model {self.model_name!r} at {self.base_url}: {message or 'not found'}"
        elif code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED):
            message = f"TF Serving at {self.base_url} answered {response.status_code}: {message}"
        else:
            message = f"{url}: {message or response.status_code}"
        raise error_for_code(code, message, response.status_code)

    def predict(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        payload = {"signature_name": signature,
                   "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}
        body = self._send("POST", f"{self._model_url}:predict", data=json.dumps(payload),
                          headers={"Content-Type": "application/json"})
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

        self._grpc = grpc
        self.target = target
        self.address = f"grpc://{target}"
        self.model_name = model_name
        self.timeout = timeout
        policy = {"methodConfig": [{
            "name": [{"service": "tensorflow.serving.PredictionService"},
                     {"service": "tensorflow.serving.ModelService"}],
            "retryPolicy": {"maxAttempts": retries + 1, "initialBackoff": f"{backoff}s",
                            "maxBackoff": f"{backoff * 2 ** retries}s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
        }]}
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(policy)),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _call(self, method, request):
        grpc = self._grpc
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code, details = Code(error.code().value[0]), error.details() or ""
            if code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED):
                message = f"TF Serving at {self.target} is unreachable: {code.name}"
            elif code == Code.NOT_FOUND:
                message = f"model {self.model_name!r} at {self.target}: {details}"
            else:
                message = f"{code.name}: {details}"
            raise error_for_code(code, message) from None

    def predict(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        from serving.tensors import decode_text, from_tensor_proto, to_tensor_proto

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(to_tensor_proto(value))
        response = self._call(self.predictions.Predict, request)
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

    def __init__(self, model_dir: str, model_name: str = DEFAULT_MODEL_NAME):
        import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
        import tensorflow as tf

        self.model_dir = self.address = model_dir
        self.model_name = model_name
        self.model = tf.saved_model.load(model_dir)

    def predict(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
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
    """`http://host:8501` (REST), `grpc://host:8500` (or `host:8500` with protocol="grpc"),
    or a SavedModel directory (protocol="saved_model")."""
    if protocol == "saved_model":
        return SavedModelTransport(server, model_name)
    parsed = urlparse(server if "://" in server else f"//{server}")
    protocol = protocol or ("grpc" if parsed.scheme == "grpc" else "rest")
    if protocol == "grpc":
        if not parsed.hostname or not parsed.port:
            raise ValueError(f"gRPC server address must be host:port, not {server!r}")
        return GrpcTransport(f"{parsed.hostname}:{parsed.port}", model_name, **options)
    if protocol == "rest":
        scheme = parsed.scheme if parsed.scheme in ("http", "https") else "http"
        if not parsed.hostname:
            raise ValueError(f"REST server address must look like http://host:8501, "
                             f"not {server!r}")
        return RestTransport(f"{scheme}://{parsed.netloc}", model_name, **options)
    raise ValueError(f"protocol must be rest or grpc, not {protocol!r}")
