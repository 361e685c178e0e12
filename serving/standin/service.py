"""The request logic both front ends share: resolve model/version/label, pick the signature,
validate inputs against its TensorSpecs and the server's limits, run, and build TF Serving's
status and metadata responses. REST and gRPC only translate their wire formats to and from this.
"""

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving.errors import Code, ServingError, error_for_code, invalid_argument, not_found
from serving.standin.repository import ModelRepository
from serving.standin.servable import Servable, Signature
from towergraph.constants import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES

SIGNATURE_DEF_FIELD = "signature_def"


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE        # rows per request (dimension 0)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # REST body / gRPC message size


@dataclass(frozen=True)
class Target:
    """What a predict request resolved to: one loaded version and one of its signatures."""
    model_name: str
    servable: Servable
    signature: Signature

    def model_spec(self) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=self.signature.name)
        spec.version.value = self.servable.version
        return spec


@dataclass(frozen=True)
class PredictResult:
    target: Target
    outputs: Dict[str, np.ndarray]


class ServingCore:
    def __init__(self, repositories: Mapping[str, ModelRepository], limits: Limits = Limits()):
        self.repositories = dict(repositories)
        self.limits = limits

    # -- resolution ---------------------------------------------------------------------------

    def servable(self, name: str, version: Optional[int] = None,
                 label: Optional[str] = None) -> Servable:
        repository = self.repositories.get(name)
        if repository is None:
            if version is not None and label is not None:
                raise invalid_argument(f"Both model version ({version}) and model version "
                                       f"label ({label}) cannot be supplied.")
            request = f"Latest({name})" if version is None and label is None else \
                f"Specific({name}, {version if version is not None else label})"
            raise not_found(f"Servable not found for request: {request}")
        return repository.servable(version, label)

    def target(self, name: str, version: Optional[int] = None, label: Optional[str] = None,
               signature_name: str = "") -> Target:
        servable = self.servable(name, version, label)
        return Target(name, servable, servable.signature(signature_name))

    # -- predict ------------------------------------------------------------------------------

    def predict(self, target: Target, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> PredictResult:
        signature = target.signature
        for position, alias in enumerate(output_filter):
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
            if alias in output_filter[:position]:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
        signature.validate(inputs)
        for key, array in inputs.items():
            if array.ndim:
                self.check_batch_size(key, array.shape[0])
        return PredictResult(target, signature.run(inputs, tuple(output_filter)))

    def check_batch_size(self, input_name: str, rows: int) -> None:
        limit = self.limits.max_batch_size
        if rows > limit:
            raise invalid_argument(
                f"Batch size {rows} of input '{input_name}' is larger than the maximum batch "
                f"size {limit} of this server (--max-batch-size)")

    def unsupported(self, method: str, name: str, version: Optional[int] = None,
                    label: Optional[str] = None, signature_name: str = "") -> None:
        """Classify/Regress: TowerGraph exports Predict signatures only, which TF Serving refuses
        for these methods with INVALID_ARGUMENT; the stand-in implements neither."""
        target = self.target(name, version, label, signature_name)
        raise invalid_argument(
            f"Expected {method} signature method_name to be tensorflow/serving/{method}. Was: "
            f"{target.signature.definition.method_name} (the stand-in implements Predict only)")

    # -- status and metadata ------------------------------------------------------------------

    def model_status(self, name: str, version: Optional[int] = None,
                     label: Optional[str] = None) -> get_model_status_pb2.GetModelStatusResponse:
        repository = self.repositories.get(name)
        if repository is not None and label is not None:
            if version is not None:
                raise invalid_argument(f"Both model version ({version}) and model version "
                                       f"label ({label}) cannot be supplied.")
            version = repository.label_version(label)
        statuses = repository.statuses() if repository is not None else []
        if version is not None:
            statuses = [(v, status) for v, status in statuses if v == version]
            if not statuses:
                raise not_found(f"Could not find version {version} of model {name}")
        elif not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus.State
        for number, status in statuses:
            entry = response.model_version_status.add(version=number,
                                                      state=states.Value(status.state))
            entry.status.error_code = int(status.error_code)
            entry.status.error_message = status.error_message
        return response

    def model_metadata(self, name: str, version: Optional[int] = None,
                       label: Optional[str] = None,
                       fields: Sequence[str] = (SIGNATURE_DEF_FIELD,),
                       ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not fields:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = self.servable(name, version, label)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in servable.signature_defs.items():
            signature_defs.signature_def[key].CopyFrom(definition)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
        return response


def internal_error(error: Exception) -> ServingError:
    """An unexpected failure, without a traceback for the client."""
    return error_for_code(Code.INTERNAL, f"Internal error in the stand-in: {type(error).__name__}")
