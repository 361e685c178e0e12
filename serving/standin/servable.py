"""One loaded model version: its SignatureDefs (as TF Serving reports them), callable signatures."""

import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.errors import invalid_argument
from serving.tensors import call_signature, dtype_of, find_signature

SERVE_TAG = "serve"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a SignatureDef: dtype and shape (None = any size, or unknown rank)."""
    name: str
    dtype: tf.DType
    shape: Optional[Tuple[Optional[int], ...]]

    @classmethod
    def from_tensor_info(cls, name: str, info: meta_graph_pb2.TensorInfo) -> "TensorSpec":
        shape = None
        if not info.tensor_shape.unknown_rank:
            shape = tuple(None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim)
        return cls(name, tf.as_dtype(info.dtype), shape)

    @property
    def dtype_name(self) -> str:
        return "DT_" + self.dtype.name.upper()

    def shape_text(self, shape=None) -> str:
        shape = self.shape if shape is None else shape
        if shape is None:
            return "[?]"
        return "[" + ",".join("-1" if dim is None else str(dim) for dim in shape) + "]"


class Signature:
    """A callable SignatureDef: validates numpy inputs against its specs, returns numpy outputs."""

    def __init__(self, name: str, definition: meta_graph_pb2.SignatureDef, function):
        self.name = name
        self.definition = definition
        self.function = function
        self.inputs: Dict[str, TensorSpec] = {
            key: TensorSpec.from_tensor_info(key, info) for key, info in definition.inputs.items()}
        self.outputs: Dict[str, TensorSpec] = {
            key: TensorSpec.from_tensor_info(key, info)
            for key, info in sorted(definition.outputs.items())}

    def validate(self, inputs: Mapping[str, np.ndarray]) -> None:
        sent, expected = set(inputs), set(self.inputs)
        if sent != expected:
            # TF Serving's wording (servables/tensorflow/predict_util.cc).
            raise invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
        for key, spec in self.inputs.items():
            array = inputs[key]
            dtype = dtype_of(array)
            if dtype != spec.dtype:
                raise invalid_argument(
                    f"input '{key}' of signature '{self.name}' has dtype "
                    f"DT_{dtype.name.upper()} but the signature expects {spec.dtype_name}")
            if spec.shape is not None and (
                    array.ndim != len(spec.shape)
                    or any(want is not None and want != got
                           for want, got in zip(spec.shape, array.shape))):
                raise invalid_argument(
                    f"input '{key}' of signature '{self.name}' has shape "
                    f"{spec.shape_text(array.shape)} but the signature expects {spec.shape_text()}")

    def run(self, inputs: Mapping[str, np.ndarray],
            output_filter: Tuple[str, ...] = ()) -> Dict[str, np.ndarray]:
        """Runs on validated inputs; outputs by alias, sorted, only `output_filter`'s if given."""
        outputs = call_signature(self.function, inputs,
                                 {key: spec.dtype for key, spec in self.inputs.items()})
        return {key: outputs[key] for key in output_filter or tuple(self.outputs)}


class Servable:
    """A model version loaded from `<base>/<version>/` with TF Serving's tag set ("serve")."""

    def __init__(self, name: str, version: int, path: str, signature_defs, loaded):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = signature_defs
        self._loaded = loaded  # keeps the variables and functions alive
        self.signatures: Dict[str, Signature] = {
            key: Signature(key, signature_defs[key], function)
            for key, function in loaded.signatures.items() if key in signature_defs}

    @classmethod
    def load(cls, name: str, version: int, path) -> "Servable":
        path = str(path)
        signature_defs = read_signature_defs(path)
        loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
        return cls(name, version, path, signature_defs, loaded)

    def signature(self, name: str) -> Signature:
        return find_signature(self.signatures, name)


def read_signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the "serve" MetaGraph, straight from saved_model.pb (as TF Serving
    reports them in GetModelMetadata, __saved_model_init_op included)."""
    pb_path = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    if os.path.exists(pb_path):
        with open(pb_path, "rb") as stream:
            saved_model.ParseFromString(stream.read())
    else:
        from google.protobuf import text_format
        with open(os.path.join(path, "saved_model.pbtxt"), encoding="utf-8") as stream:
            text_format.Parse(stream.read(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path} has no MetaGraph tagged {SERVE_TAG!r}")
