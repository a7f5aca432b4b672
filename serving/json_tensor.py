"""TF Serving's JSON <-> tensor mapping for predict, as tensorflow_serving/util/json_tensor.cc does it.

Requests come in row ("instances": one entry per example) or columnar ("inputs": one entry per
input) format; the answer uses the matching "predictions" or "outputs". Input strings are raw JSON
strings or {"b64": ...}. A string output is written as {"b64": ...} only when its name ends in
"_bytes", otherwise as a raw JSON string; floats as absl::StrCat writes them (6 significant digits,
9 when 6 do not round-trip, a ".0" on whole numbers, NaN and Infinity bare).
"""
from __future__ import annotations

import base64
import binascii
import json

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.status import invalid_argument

BYTES_SUFFIX = "_bytes"
MAX_DEBUG_CHARS = 256  # json_tensor.cc kMaxJsonDebugStringBytes


def _debug(value) -> str:
    return json.dumps(value, separators=(",", ":"))[:MAX_DEBUG_CHARS]


def _type_name(value) -> str:
    return {bool: "Bool", str: "String", dict: "Object", list: "Array", type(None): "Null"}.get(type(value), "Number")


def _dtype_name(dtype: tf.DType) -> str:
    """TF's DataTypeString: "float", "int64", "string", ..."""
    return types_pb2.DataType.Name(dtype.as_datatype_enum)[len("DT_"):].lower()


def _type_error(value, dtype: tf.DType):
    return invalid_argument(f"JSON Value: {_debug(value)} Type: {_type_name(value)} "
                            f"is not of expected type: {_dtype_name(dtype)}")


def _status_text(error: Exception) -> str:
    """absl::Status::ToString of an error: "INVALID_ARGUMENT: message", as TF Serving nests it."""
    code = getattr(error, "code", None)
    return f"{code.name}: {error.message}" if code is not None else f"INTERNAL: {error}"


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _leaf(value, dtype: tf.DType):
    """One JSON leaf as a value of DTYPE (json_tensor.cc AddValueToTensor), or INVALID_ARGUMENT."""
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if not _is_b64(value):
            raise (invalid_argument(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
                   if isinstance(value, dict) else _type_error(value, dtype))
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("Unable to base64 decode") from None
    if isinstance(value, bool):
        if dtype != tf.bool:
            raise _type_error(value, dtype)
        return value
    if dtype.is_floating and isinstance(value, (int, float)):
        return value
    if dtype.is_integer and isinstance(value, int) and dtype.min <= value <= dtype.max:
        return value
    raise _type_error(value, dtype)


def _shape(value) -> list[int]:
    """json_tensor.cc GetDenseTensorShape: the sizes along the first element of each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def json_to_array(value, dtype: tf.DType) -> np.ndarray:
    """A (nested) JSON value as a dense numpy array of DTYPE (json_tensor.cc FillTensorProto)."""
    shape = _shape(value)
    leaves = []

    def fill(item, level: int) -> None:
        if not isinstance(item, list):
            if level != len(shape):
                raise invalid_argument(f"JSON Value: {_debug(item)} found at incorrect level: {level + 1} "
                                       f"in the JSON DOM. Expected at level: {len(shape)}")
            leaves.append(_leaf(item, dtype))
            return
        if level >= len(shape):
            raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(item) != shape[level]:
            raise invalid_argument(f"Encountered list at unexpected size: {len(item)} at level: {level} "
                                   f"expected size: {shape[level]}")
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    if dtype == tf.string:
        flat = np.empty(len(leaves), dtype=object)
        flat[:] = leaves
    else:
        flat = np.array(leaves, dtype=dtype.as_numpy_dtype)
    return flat.reshape(shape)


def request_tensors(body: dict, specs: dict[str, tf.TensorSpec]) -> tuple[dict[str, np.ndarray], str]:
    """The input tensors of a parsed predict body and its format, "row" or "columnar"
    (json_tensor.cc FillPredictRequestFromJson)."""
    if "instances" in body and "inputs" in body:
        raise invalid_argument("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    if "instances" in body:
        return _from_instances(body["instances"], specs), "row"
    if "inputs" in body:
        return _from_inputs(body["inputs"], specs), "columnar"
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances, specs: dict) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise invalid_argument("Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid_argument("No values in 'instances' array")

    def is_object(item) -> bool:
        return isinstance(item, dict) and not _is_b64(item)

    named = is_object(instances[0])
    if not named and len(specs) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple input "
                               "tensors required as per tensorinfo_map")
    rows: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    for index, item in enumerate(instances):
        if is_object(item) != named:
            raise invalid_argument(f"Expecting {'object but got list' if named else 'value/list but got object'} "
                                   f"at item {index} of input list")
        for name, value in (item.items() if named else [(next(iter(specs)), item)]):
            where = f"Failed to process element: {index}" + (f" key: {name}" if named else "") + " of 'instances' list"
            if name not in specs:
                raise invalid_argument(f"{where}. Error: INVALID_ARGUMENT: JSON object: does not have named "
                                       f"input: {name}")
            try:
                array = json_to_array(value, specs[name].dtype)
            except Exception as error:
                raise invalid_argument(f"{where}. Error: {_status_text(error)}") from None
            if rows[name] and rows[name][0].shape != array.shape:
                first = rows[name][0]
                problem = (f"Expecting tensor size: {first.size} but got: {array.size}" if first.size != array.size
                           else f"Expecting shape {list(first.shape)} but got: {list(array.shape)}")
                raise invalid_argument(f"{where}. Error: INVALID_ARGUMENT: {problem}")
            rows[name].append(array)
        if named and set(item) != set(specs):
            raise invalid_argument(f"Failed to process element: {index} of 'instances' list. JSON object: "
                                   f"{_debug(item)} keys must be equal to: {','.join(sorted(specs))}")
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _from_inputs(inputs, specs: dict) -> dict[str, np.ndarray]:
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple input "
                                   "tensors required as per tensorinfo_map")
        name, spec = next(iter(specs.items()))
        return {name: json_to_array(inputs, spec.dtype)}
    tensors = {}
    for name, spec in sorted(specs.items()):  # other keys are ignored, as TF Serving ignores them
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        try:
            tensors[name] = json_to_array(inputs[name], spec.dtype)
        except Exception as error:
            raise invalid_argument(f"input '{name}': {getattr(error, 'message', error)}") from None
    return tensors


# --- answers --------------------------------------------------------------------------------

def _decimal_texts(values: np.ndarray) -> np.ndarray:
    """Floats as json_tensor.cc WriteDecimal writes them: absl::StrCat's six digits, max_digits10 (9 for
    float32, 17 for float64) when six do not read back as the same value, ".0" on whole numbers."""
    flat = values.reshape(-1)
    numbers = flat.tolist()
    texts = ["%.6g" % number for number in numbers]
    finite = np.isfinite(flat)
    read_back = np.array([text if ok else "0" for text, ok in zip(texts, finite.tolist())], dtype=flat.dtype)
    full = "%.9g" if flat.dtype.itemsize <= 4 else "%.17g"
    for index in np.flatnonzero(finite & (read_back != flat)).tolist():
        texts[index] = full % numbers[index]
    for index, text in enumerate(texts):
        if "." not in text and "e" not in text:
            texts[index] = text + ".0"
    out = np.empty(flat.size, dtype=object)
    out[:] = texts
    out[np.isnan(flat)] = "NaN"
    out[np.isposinf(flat)] = "Infinity"
    out[np.isneginf(flat)] = "-Infinity"
    return out.reshape(values.shape)


def _leaf_texts(name: str, value: np.ndarray) -> np.ndarray:
    """Every element of an output tensor as its JSON text (json_tensor.cc AddSingleValueAndAdvance)."""
    if value.dtype == object:
        as_bytes = name.endswith(BYTES_SUFFIX)
        texts = np.empty(value.size, dtype=object)
        # Not "_bytes": the raw bytes inside a JSON string, as rapidjson's writer puts them.
        texts[:] = ['{"b64":"' + base64.b64encode(item).decode("ascii") + '"}' if as_bytes
                    else json.dumps(item.decode("utf-8", "surrogateescape"), ensure_ascii=False)
                    for item in value.reshape(-1)]
        return texts.reshape(value.shape)
    if value.dtype.kind == "f":
        return _decimal_texts(value)
    if value.dtype.kind == "b":
        return np.where(value, "true", "false").astype(object)
    if value.dtype.kind in "iu":
        return value.astype(str).astype(object)
    raise invalid_argument(f"Failed to write JSON value for tensor type: {_dtype_name(tf.as_dtype(value.dtype))} "
                           f"(output '{name}')")


def _nested(texts) -> str:
    """Nested JSON arrays around an array of element texts, built from the innermost axis out."""
    if isinstance(texts, str):
        return texts
    shape = texts.shape
    current = texts.reshape(-1).tolist()
    for axis in reversed(range(len(shape))):
        size, groups = shape[axis], int(np.prod(shape[:axis], dtype=np.int64))
        current = ["[]"] * groups if size == 0 else \
            ["[" + ",".join(current[i:i + size]) + "]" for i in range(0, len(current), size)]
    return current[0]


def response_json(outputs: dict[str, np.ndarray], layout: str) -> bytes:
    """The answer body: {"predictions": [...]} for the row format, {"outputs": ...} for the columnar."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    texts = {name: _leaf_texts(name, np.asarray(value)) for name, value in outputs.items()}
    single = len(outputs) == 1
    if layout == "columnar":
        body = _nested(next(iter(texts.values()))) if single else \
            "{" + ",".join(f"{json.dumps(name)}:{_nested(value)}" for name, value in texts.items()) + "}"
        return ('{"outputs":' + body + "}").encode("utf-8", "surrogateescape")
    batch = None
    for name, value in texts.items():  # json_tensor.cc MakeRowFormatJsonFromTensors
        if value.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and value.shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {value.shape[0]} "
                                   f"expecting: {batch}")
        batch = value.shape[0]
    rows = [_nested(next(iter(texts.values()))[i]) if single else
            "{" + ",".join(f"{json.dumps(name)}:{_nested(value[i])}" for name, value in texts.items()) + "}"
            for i in range(batch)]
    return ('{"predictions":[' + ",".join(rows) + "]}").encode("utf-8", "surrogateescape")
