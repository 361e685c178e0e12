"""TF Serving's gRPC services: PredictionService (Predict, GetModelMetadata; Classify and Regress
refused like TF Serving refuses them for Predict signatures) and ModelService (GetModelStatus).

Errors abort the call with TF Serving's canonical code. Message size over --max-request-bytes is
gRPC's own RESOURCE_EXHAUSTED. Output tensors use the typed value fields (float_val, string_val,
...) as TF Serving's Predict does (Tensor::AsProtoField), so clients reading `.float_val` work as
well as those calling tf.make_ndarray.
"""

import logging
import math

import grpc
import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from serving.standin.errors import ServingError, invalid_argument
from serving.standin.service import ServingCore, internal_error

LOG = logging.getLogger("serving.standin")

_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto with typed value fields, as TF Serving's Predict returns them."""
    dtype = tf.string if array.dtype.kind in "OSU" else tf.as_dtype(array.dtype)
    field = _VALUE_FIELDS.get(dtype.as_datatype_enum)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    values = array.ravel()
    if array.dtype.kind == "U":
        values = np.char.encode(values, "utf-8")
    getattr(proto, field).extend(values.tolist())
    return proto


def from_tensor_proto(name: str, proto: tensor_pb2.TensorProto, core: ServingCore) -> np.ndarray:
    """The request tensor as numpy; its declared shape is checked against the limits first, as
    TensorProto fills a short value list up to the shape by repeating the last value."""
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if dims:
        core.check_batch_size(name, dims[0])
    if any(size < 0 for size in dims) or math.prod(dims) > core.limits.max_request_bytes:
        raise invalid_argument(f"input '{name}' has an invalid or oversized shape {dims}")
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - any malformed proto is the caller's error
        raise invalid_argument(f"input '{name}' is not a valid TensorProto: "
                               f"{type(error).__name__}: {error}") from None


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
        inputs = {name: from_tensor_proto(name, proto, self.core)
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

