"""TF Serving's JSON mapping of tensors (util/json_tensor.cc), to and from numpy.

Requests: {"signature_name": ..., "instances": [...]} (row format) or {"inputs": ...}
(columnar). Each value becomes a tensor of the dtype its signature input declares; strings are
UTF-8, {"b64": ...} objects are bytes. Responses: {"predictions": [...]} with one value per row
(an object per row when there are several outputs) or {"outputs": ...} (the bare value when there
is one output). float32s print with 6 significant digits, or 9 when 6 do not round-trip ("0.2",
not 0.20000000298...), NaN and Infinity as those tokens, outputs named *_bytes as {"b64": ...}.
"""

import base64
import binascii
import json
from typing import Dict, List, Mapping, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from serving.errors import Code, ServingError, error_for_code, invalid_argument
from serving.standin.servable import TensorSpec

ROW, COLUMNAR = "row", "columnar"
_ECHO_CHARS = 120  # how much of an offending JSON value error messages quote
MAX_RANK = 32      # numpy's limit


def _echo(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    return {str: "String", list: "Array", dict: "Object"}.get(type(value), type(value).__name__)


# -- request ----------------------------------------------------------------------------------

def parse_body(body: bytes) -> dict:
    """The request's top-level JSON object (TF Serving accepts NaN and Infinity tokens)."""
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: "
                               f"{error.start}") from None
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: nested too deeply") from None
    except ValueError as error:  # e.g. an integer literal of more than 4300 digits
        raise invalid_argument(f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_echo(document)} Is not object")
    return document


def signature_name(document: dict) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(f"JSON Value: {_echo(document)} not formatted correctly. "
                               "'signature_name' key must be a string value.")
    return name


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def parse_inputs(document: dict, specs: Mapping[str, TensorSpec]
                 ) -> Tuple[Dict[str, np.ndarray], str]:
    """Input arrays keyed by signature input name, and the request format (ROW or COLUMNAR)."""
    if not specs:
        raise invalid_argument("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument("JSON Value: not formatted correctly expecting only one of "
                               "'inputs' or 'instances' keys to exist")
    if has_instances:
        return _from_instances(document["instances"], specs), ROW
    if has_inputs:
        return _from_inputs(document["inputs"], specs), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances, specs: Mapping[str, TensorSpec]) -> Dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise invalid_argument("Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid_argument("No values in 'instances' array")
    is_object = [isinstance(item, dict) and not _is_b64(item) for item in instances]
    if not is_object[0]:
        if len(specs) > 1:
            raise invalid_argument(
                "instances is a plain list, but expecting list of objects as multiple input "
                "tensors required as per tensorinfo_map")
        if any(is_object):
            raise invalid_argument(f"Expecting value/list but got object at item "
                                   f"{is_object.index(True)} of input list")
        (name, spec), = specs.items()
        return {name: _to_array(instances, spec, "'instances' list")}
    names = set(specs)
    for position, item in enumerate(instances):
        if not is_object[position]:
            raise invalid_argument(f"Expecting object but got list at item {position} of "
                                   "input list")
        if set(item) != names:
            raise invalid_argument(
                f"Failed to process element: {position} of 'instances' list. JSON object: "
                f"{_echo(item)} keys must be equal to: {','.join(sorted(names))}")
    return {name: _to_array([item[name] for item in instances], spec,
                            f"key: {name} of 'instances' list")
            for name, spec in specs.items()}


def _from_inputs(inputs, specs: Mapping[str, TensorSpec]) -> Dict[str, np.ndarray]:
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map")
        (name, spec), = specs.items()
        return {name: _to_array(inputs, spec, "'inputs'")}
    arrays = {}
    for name, spec in specs.items():  # like TF Serving, keys the signature lacks are ignored
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = _to_array(inputs[name], spec, f"input '{name}'")
    return arrays


def _to_array(value, spec: TensorSpec, where: str) -> np.ndarray:
    """A dense array from nested lists; its shape follows the first element at every level."""
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    if len(shape) > MAX_RANK:
        raise invalid_argument(f"{where}: lists nested {len(shape)} deep; tensors have at most "
                               f"{MAX_RANK} dimensions")
    level_items = [value]
    for level, size in enumerate(shape):
        next_items = []
        for item in level_items:
            if not isinstance(item, list):
                raise invalid_argument(
                    f"{where}: JSON Value: {_echo(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {len(shape)}")
            if len(item) != size:
                raise invalid_argument(
                    f"{where}: Encountered list at unexpected size: {len(item)} at level: "
                    f"{level} expected size: {size}")
            next_items.extend(item)
        level_items = next_items
    for item in level_items:
        if isinstance(item, list):
            raise invalid_argument(f"{where}: Encountered list at unexpected level: "
                                   f"{len(shape)} expected < {len(shape)}")
    return _convert(level_items, spec.dtype, where).reshape(shape)


_INT_RANGES = {tf.int8: (-2 ** 7, 2 ** 7), tf.uint8: (0, 2 ** 8), tf.int16: (-2 ** 15, 2 ** 15),
               tf.int32: (-2 ** 31, 2 ** 31), tf.int64: (-2 ** 63, 2 ** 63),
               tf.uint32: (0, 2 ** 32), tf.uint64: (0, 2 ** 64)}
_FLOAT_INT_LIMIT = {tf.float32: 2 ** 24, tf.float64: 2 ** 53}


def _type_error(value, dtype: tf.DType, where: str) -> ServingError:
    return invalid_argument(f"{where}: JSON Value: {_echo(value)} Type: {_json_type(value)} is "
                            f"not of expected type: DT_{dtype.name.upper()}")


def _convert(leaves: List, dtype: tf.DType, where: str) -> np.ndarray:
    if dtype == tf.string:
        out = np.empty(len(leaves), dtype=object)
        for position, value in enumerate(leaves):
            if isinstance(value, str):
                out[position] = value.encode("utf-8", "surrogatepass")
            elif _is_b64(value):
                try:
                    out[position] = base64.b64decode(value["b64"], validate=True)
                except (binascii.Error, ValueError):
                    raise invalid_argument(f"{where}: Unable to base64 decode") from None
            elif isinstance(value, dict):
                raise invalid_argument(f"{where}: JSON Value: {_echo(value)} not formatted "
                                       "correctly for base64 data")
            else:
                raise _type_error(value, dtype, where)
        return out
    if dtype == tf.bool:
        for value in leaves:
            if not isinstance(value, bool):
                raise _type_error(value, dtype, where)
        return np.array(leaves, dtype=bool)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        for value in leaves:
            if type(value) is not int or not low <= value < high:  # noqa: E721 - bool is no int
                raise _type_error(value, dtype, where)
        return np.array(leaves, dtype=dtype.as_numpy_dtype)
    if dtype in (tf.float32, tf.float64, tf.float16, tf.bfloat16):
        finite_max = float(np.finfo(np.float32 if dtype != tf.float64 else np.float64).max)
        for value in leaves:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _type_error(value, dtype, where)
            lossy = (abs(value) > _FLOAT_INT_LIMIT.get(dtype, 2 ** 11)
                     if isinstance(value, int) else
                     np.isfinite(value) and abs(value) > finite_max)
            if lossy:
                raise invalid_argument(f"{where}: Cannot convert JSON value: {_echo(value)} to "
                                       f"{dtype.name} without loss of precision.")
        return np.array(leaves, dtype=np.float64).astype(dtype.as_numpy_dtype)
    raise error_for_code(Code.UNIMPLEMENTED, f"{where}: Conversion of JSON values to type: "
                                           f"DT_{dtype.name.upper()} is not supported")


# -- response ---------------------------------------------------------------------------------

def _json_values(name: str, array: np.ndarray):
    """Nested lists of JSON-ready values for one output tensor."""
    if array.dtype.kind in "OS":
        if name.endswith("_bytes"):
            encode = np.frompyfunc(lambda b: {"b64": base64.b64encode(b).decode("ascii")}, 1, 1)
        else:
            encode = np.frompyfunc(lambda b: b.decode("utf-8", "replace"), 1, 1)
        return encode(array).tolist() if array.size else array.tolist()
    if array.dtype.kind == "U":
        return array.tolist()
    if array.dtype == np.float32 or array.dtype == np.float16:
        return _float32_values(array.astype(np.float32))
    return array.tolist()


def _float32_values(array: np.ndarray):
    """float32s as TF Serving writes them (WriteDecimal): 6 significant digits if those
    round-trip, else 9. Parsed back, the same doubles as TF Serving's (not 0.2000000029...)."""
    wide = array.astype(np.float64)
    short = np.char.mod("%g", wide)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = (short.astype(np.float32) == array) | ~np.isfinite(array)
    text = np.where(exact, short, np.char.mod("%.9g", wide))
    return text.astype(np.float64).reshape(array.shape).tolist()


def predict_response(outputs: Mapping[str, np.ndarray], request_format: str) -> dict:
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    values = {name: _json_values(name, array) for name, array in outputs.items()}
    if request_format == COLUMNAR:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch_size = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and array.shape[0] != batch_size:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: "
                                   f"{array.shape[0]} expecting: {batch_size}")
        batch_size = array.shape[0]
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: rows[row] for name, rows in values.items()}
                            for row in range(batch_size)]}


def dumps(document) -> bytes:
    """JSON as TF Serving writes it: UTF-8 (not \\u escapes), NaN/Infinity allowed."""
    return json.dumps(document, ensure_ascii=False, allow_nan=True).encode("utf-8", "replace")
