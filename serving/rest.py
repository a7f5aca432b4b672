"""TF Serving's REST API on http.server: predict, model status and model metadata.

JSON follows tensorflow_serving/util/json_tensor.cc: requests in row ("instances") or columnar
("inputs") format, bytes as {"b64": ...}; a string output is base64-encoded only when its name
ends in "_bytes", otherwise written as a raw JSON string, as TF Serving writes it.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.servables import ModelManager, Signature
from serving.status import ServingError, from_exception, invalid_argument

log = logging.getLogger("viton-tf.serve")
# tensorflow_serving/model_servers/http_rest_api_util.h kHTTPRestApiHandlerPathRegex.
PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                  r"(?::(classify|regress|predict))?(?:/(metadata))?", re.IGNORECASE)


def _string_value(value, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument(f"input '{name}': Unable to base64 decode") from None
    raise invalid_argument(f"input '{name}': expected a string or {{\"b64\": ...}}, got {json.dumps(value)[:80]}")


def _array(value, spec: tf.TensorSpec, name: str) -> np.ndarray:
    """One input's JSON value as numpy of the signature's dtype, or INVALID_ARGUMENT naming it."""
    if spec.dtype == tf.string:
        def shape_of(item):
            return [len(item)] + shape_of(item[0]) if isinstance(item, list) and item else \
                ([0] if isinstance(item, list) else [])

        def flatten(item, depth):
            if depth == 0:
                if isinstance(item, list):
                    raise invalid_argument(f"input '{name}': nested lists of different lengths")
                return [_string_value(item, name)]
            if not isinstance(item, list) or len(item) != shape[-depth]:
                raise invalid_argument(f"input '{name}': nested lists of different lengths")
            return [leaf for element in item for leaf in flatten(element, depth - 1)]

        shape = shape_of(value)
        flat = np.empty(int(np.prod(shape)), dtype=object)
        flat[:] = flatten(value, len(shape))
        return flat.reshape(shape)
    try:
        return np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise invalid_argument(f"input '{name}': cannot read it as {spec.dtype.name}: {error}") from None


def request_tensors(body: dict, signature: Signature) -> tuple[dict, str]:
    """The inputs of a predict request body and its format ("row" or "columnar")."""
    specs = signature.inputs
    if ("instances" in body) == ("inputs" in body):
        raise invalid_argument("Missing 'inputs' or 'instances' key" if "instances" not in body
                               else "Not both 'inputs' and 'instances' can be specified")
    if "inputs" in body:
        inputs = body["inputs"]
        if not (isinstance(inputs, dict) and set(inputs) <= set(specs) and inputs):
            if len(specs) != 1:
                raise invalid_argument(f"'inputs' must be an object with keys {sorted(specs)}")
            inputs = {next(iter(specs)): inputs}
        return {name: _array(value, specs[name], name) for name, value in inputs.items()}, "columnar"
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise invalid_argument("'instances' must be a non-empty list")
    if len(specs) == 1 and not all(isinstance(item, dict) and set(item) == set(specs) for item in instances):
        instances = [{next(iter(specs)): item} for item in instances]
    tensors = {}
    for index, item in enumerate(instances):
        if not isinstance(item, dict):
            raise invalid_argument(f"Expecting object but got {type(item).__name__} at item {index} of 'instances'")
        missing = sorted(set(specs) - set(item))
        if missing:
            raise invalid_argument(f"Missing named input: {missing[0]} in 'instances' list item {index}")
    for name in set().union(*instances):
        if name not in specs:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        rows = [_array(item[name], specs[name], name) for item in instances]
        if len({row.shape for row in rows}) > 1:
            raise invalid_argument(f"input '{name}': the instances have different shapes "
                                   f"{sorted({row.shape for row in rows})}")
        tensors[name] = np.stack(rows)
    return tensors, "row"


def _jsonable(name: str, value: np.ndarray):
    if value.dtype != object:
        return value.tolist()
    as_bytes = name.endswith("_bytes")
    encode = ((lambda item: {"b64": base64.b64encode(item).decode("ascii")}) if as_bytes
              else (lambda item: item.decode("utf-8", "surrogateescape")))
    if value.ndim == 0:
        return encode(value.item())
    flat = np.empty(value.size, dtype=object)
    flat[:] = [encode(item) for item in value.reshape(-1)]
    return flat.reshape(value.shape).tolist()


def response_json(outputs: dict, layout: str) -> bytes:
    if layout == "row":
        sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
        if len(sizes) != 1 or None in sizes:
            raise invalid_argument(f"outputs disagree on the batch size ({sorted(map(str, sizes))}); "
                                   "use the columnar 'inputs' format")
        columns = {name: _jsonable(name, value) for name, value in outputs.items()}
        rows = [{name: column[i] for name, column in columns.items()} for i in range(sizes.pop())]
        body = {"predictions": rows if len(outputs) > 1 else [row[next(iter(outputs))] for row in rows]}
    else:
        columns = {name: _jsonable(name, value) for name, value in outputs.items()}
        body = {"outputs": columns if len(outputs) > 1 else next(iter(columns.values()))}
    # Raw (non-"_bytes") strings go out byte for byte, as TF Serving's rapidjson writer does.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogateescape")


def _proto_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class RestHandler(BaseHTTPRequestHandler):
    manager: ModelManager  # set by make_rest_server
    max_body_bytes: int

    def log_message(self, format, *args):  # http.server logs every request to stderr otherwise
        log.debug("rest: " + format, *args)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def _answer(self, method: str) -> None:
        try:
            body = self._handle(method)
            status = 200
        except Exception as error:
            failure = error if isinstance(error, ServingError) else from_exception(error)
            if not isinstance(error, ServingError):
                log.exception("rest: %s %s failed", method, self.path)
            body, status = json.dumps({"error": failure.message}).encode(), failure.http_status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> bytes:
        match = PATH.fullmatch(self.path.split("?")[0])
        if not match or not match.group(1):
            raise invalid_argument(f"Malformed request: {method} {self.path}")
        name, number, label, verb, metadata = match.groups()
        number = int(number) if number else None
        if method == "GET" and not verb:
            if metadata:
                return self._metadata(name, number, label)
            response = get_model_status_pb2.GetModelStatusResponse(
                model_version_status=self.manager.status(name, number, label))
            return json.dumps(_proto_json(response), indent=1).encode()
        if method == "POST" and verb == "predict" and not metadata:
            return self._predict(name, number, label)
        if method == "POST" and verb in ("classify", "regress") and not metadata:
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{verb} is not served; use predict")
        raise invalid_argument(f"Malformed request: {method} {self.path}")

    def _predict(self, name, number, label) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.max_body_bytes:
            raise invalid_argument(f"request body is {length} bytes, more than the server's limit of "
                                   f"{self.max_body_bytes}")
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8", "surrogateescape"))
        except ValueError as error:
            raise invalid_argument(f"JSON Parse error: {error}") from None
        if not isinstance(body, dict):
            raise invalid_argument("the request body must be a JSON object")
        with self.manager.version(name, number, label) as version:
            signature = version.signature(body.get("signature_name", ""))
            inputs, layout = request_tensors(body, signature)
            outputs = signature(inputs)
        return response_json(outputs, layout)

    def _metadata(self, name, number, label) -> bytes:
        with self.manager.version(name, number, label) as version:
            spec = {"name": name, "signature_name": "", "version": str(version.number)}
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in version.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(value)
        body = {"model_spec": spec, "metadata": {"signature_def": _proto_json(signature_map)}}
        return json.dumps(body, indent=1).encode()


def make_rest_server(port: int, manager: ModelManager, max_request_bytes: int) -> ThreadingHTTPServer:
    handler = type("Handler", (RestHandler,), {"manager": manager,
                                               # base64 and JSON around the tensors
                                               "max_body_bytes": 2 * max_request_bytes + (1 << 20)})
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = False  # server_close() waits for the requests in flight
    return server
