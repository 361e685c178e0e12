"""TF Serving's gRPC services: PredictionService (Predict, GetModelMetadata; Classify and Regress
refused like TF Serving refuses them for Predict signatures) and ModelService (GetModelStatus).

Errors abort the call with TF Serving's canonical code. Message size over --max-request-bytes is
gRPC's own RESOURCE_EXHAUSTED. Output tensors use the typed value fields (float_val, string_val,
...) as TF Serving's Predict does (Tensor::AsProtoField), so clients reading `.float_val` work as
well as those calling tf.make_ndarray.
"""

import logging

import grpc
import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from serving.errors import ServingError
from serving.standin.service import ServingCore, internal_error
from serving.tensors import from_tensor_proto, to_tensor_proto

LOG = logging.getLogger("serving.standin")

def _input_array(name: str, proto, core: ServingCore) -> np.ndarray:
    """A request tensor as numpy: rows checked against --max-batch-size and its declared size
    against --max-request-bytes before anything is allocated."""
    dims = proto.tensor_shape.dim
    if dims:
        core.check_batch_size(name, dims[0].size)
    return from_tensor_proto(f"input '{name}'", proto, core.limits.max_request_bytes)


def _version_and_label(model_spec):
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return version, label


class _Servicer:
    def __init__(self, core: ServingCore):
        self.core = core

    def _call(self, context, method: str, function):
        try:
            return function()
        except ServingError as error:
            failure = error
        except Exception as error:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("gRPC %s failed", method)
            failure = internal_error(error)
        context.abort(grpc.StatusCode[failure.code.name], failure.message)


class PredictionService(_Servicer, prediction_service_pb2_grpc.PredictionServiceServicer):

    def Predict(self, request, context):
        return self._call(context, "Predict", lambda: self._predict(request))

    def _predict(self, request):
        version, label = _version_and_label(request.model_spec)
        target = self.core.target(request.model_spec.name, version, label,
                                  request.model_spec.signature_name)
        inputs = {name: _input_array(name, proto, self.core)
                  for name, proto in request.inputs.items()}
        result = self.core.predict(target, inputs, list(request.output_filter))
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(target.model_spec())
        for name, array in result.outputs.items():
            response.outputs[name].CopyFrom(to_tensor_proto(array))
        return response

    def GetModelMetadata(self, request, context):
        def metadata():
            version, label = _version_and_label(request.model_spec)
            return self.core.model_metadata(request.model_spec.name, version, label,
                                            list(request.metadata_field))
        if not request.HasField("model_spec"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        return self._call(context, "GetModelMetadata", metadata)

    def Classify(self, request, context):
        return self._unsupported("classify", request, context)

    def Regress(self, request, context):
        return self._unsupported("regress", request, context)

    def _unsupported(self, method, request, context):
        version, label = _version_and_label(request.model_spec)
        return self._call(context, method, lambda: self.core.unsupported(
            method, request.model_spec.name, version, label, request.model_spec.signature_name))


class ModelService(_Servicer, model_service_pb2_grpc.ModelServiceServicer):

    def GetModelStatus(self, request, context):
        if not request.HasField("model_spec"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        version, label = _version_and_label(request.model_spec)
        return self._call(context, "GetModelStatus", lambda: self.core.model_status(
            request.model_spec.name, version, label))

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "The stand-in serves the versions it finds on disk; it takes no config")


def add_services(server: grpc.Server, core: ServingCore) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)

