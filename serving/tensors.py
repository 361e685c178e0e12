"""numpy <-> TensorFlow for both ends of the wire: one home for the conversions the client's
transports and the stand-in server share.

  to_tensor_proto / from_tensor_proto   numpy <-> TensorProto (gRPC's Predict), typed value fields
  find_signature / call_signature       a SavedModel signature called with numpy inputs; its
                                        TensorFlow errors become the serving error family
  encode_text / decode_text             str <-> UTF-8 bytes, as TensorFlow and JSON want them

Importing it imports TensorFlow: the REST-only client never does.
"""

from typing import Dict, Mapping, Optional

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import Code, error_for_code, from_tf_error, invalid_argument

_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def dtype_of(array: np.ndarray) -> tf.DType:
    """The TF dtype a numpy array stands for (object, bytes and str arrays are DT_STRING)."""
    if array.dtype.kind in "OSU":
        return tf.string
    return tf.as_dtype(array.dtype)


def _utf8(value):
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def encode_text(array) -> np.ndarray:
    """str (and object arrays holding str) as UTF-8 bytes; other arrays unchanged."""
    array = np.asarray(array)
    if array.dtype.kind not in "UO":
        return array
    return np.asarray(np.frompyfunc(_utf8, 1, 1)(array), dtype=object).reshape(array.shape)


def decode_text(array: np.ndarray) -> np.ndarray:
    """UTF-8 bytes to str, as REST's JSON delivers them; other arrays unchanged."""
    if array.dtype.kind not in "OS" or not array.size:
        return array
    decode = np.frompyfunc(lambda value: value.decode("utf-8", "replace")
                           if isinstance(value, bytes) else value, 1, 1)
    return np.asarray(decode(array), dtype=object).reshape(array.shape)


def to_tensor_proto(array) -> tensor_pb2.TensorProto:
    """A TensorProto with typed value fields (float_val, string_val, ...), as TF Serving's
    Predict writes them, so readers of `.float_val` work as well as tf.make_ndarray."""
    array = encode_text(array)
    dtype = dtype_of(array)
    field = _VALUE_FIELDS.get(dtype.as_datatype_enum)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def from_tensor_proto(what: str, proto: tensor_pb2.TensorProto,
                      max_elements: Optional[int] = None) -> np.ndarray:
    """The tensor as numpy; `what` names it in errors ("input 'k'"). Its declared shape is
    checked first (at most `max_elements` values, none negative), as TensorProto fills a short
    value list up to the shape by repeating the last value: a tiny message must not allocate
    gigabytes."""
    dims = [dim.size for dim in proto.tensor_shape.dim]
    total = 1
    for size in dims:
        total *= max(size, 0)
    if any(size < 0 for size in dims) or (max_elements is not None and total > max_elements):
        raise invalid_argument(f"{what} has an invalid or oversized shape {dims}")
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - any malformed proto is the sender's error
        raise invalid_argument(f"{what} is not a valid TensorProto: "
                               f"{type(error).__name__}: {str(error)[:200]}") from None


def find_signature(signatures: Mapping, name: str):
    """signatures[name] ('' is serving_default), or TF Serving's FAILED_PRECONDITION."""
    key = name or tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    if key not in signatures:
        # TF Serving's wording and code (predict_util.cc); REST maps it to 400.
        raise error_for_code(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
    return signatures[key]


def check_rows(inputs: Mapping[str, np.ndarray]) -> None:
    """TowerGraph's signatures are batch-major: row i of every input is one query, so every
    input must have the same number of rows (dimension 0), or the outputs would not line up."""
    rows = {name: np.shape(array)[0] for name, array in inputs.items() if np.ndim(array)}
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"{name}: {count}" for name, count in sorted(rows.items()))
        raise invalid_argument(f"inputs must have the same number of rows (dimension 0); "
                               f"got {counts}")


def call_signature(function, inputs: Mapping[str, np.ndarray],
                   dtypes: Optional[Mapping[str, tf.DType]] = None) -> Dict[str, np.ndarray]:
    """Calls a concrete signature function with numpy inputs (text as UTF-8, cast to `dtypes`
    where given; rows checked by check_rows); returns its outputs as numpy. A TensorFlow error
    becomes the serving error of its code (e.g. RequestRejected for INVALID_ARGUMENT), with the
    op's message only."""
    check_rows(inputs)
    tensors = {}
    try:
        for key, array in inputs.items():
            tensors[key] = tf.constant(encode_text(array), dtype=(dtypes or {}).get(key))
        outputs = function(**tensors)
    except tf.errors.OpError as error:
        raise from_tf_error(error) from None
    except (TypeError, ValueError) as error:  # wrong input names or values of the wrong type
        raise invalid_argument(str(error).splitlines()[0][:300]) from None
    return {key: value.numpy() for key, value in outputs.items()}
