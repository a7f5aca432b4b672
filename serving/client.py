"""`viton-tf client`'s transports: one try-on request to TF Serving (or `viton-tf serve`), gRPC or REST.

The exported model's `serving_default` signature decodes, resizes and encodes the images itself, so a
request is just the photos' file bytes, the parsing PNG and the COCO-18 keypoints, and the answer's
`tryon_png_bytes` is the PNG to write. Preparing a person photo (pose and parsing) is the library's
work: `viton-tf client` (viton_tf/cli.py) does it, or reads the prepared files, then calls `run_client`.
The gRPC call is the one of tensorflow_serving/example/resnet_client_grpc.py.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

SIGNATURE = "serving_default"  # the upper-body try-on; the old exports' only one
CATEGORY_SIGNATURE = "serving_category"  # the same inputs plus `category` ("upper", "lower" or "dress")
PNG_OUTPUT = "tryon_png_bytes"  # "_bytes": TF Serving's REST sends it as {"b64": ...}
OLD_PNG_OUTPUT = "tryon_png"  # the name in exports made before the rename
MAX_MESSAGE_BYTES = 2**31 - 1


class ClientError(Exception):
    """A bad input file or a failed request, with a message naming it."""


def signature_for(inputs: dict) -> str:
    """serving_category when the request carries a category, else serving_default."""
    return CATEGORY_SIGNATURE if "category" in inputs else SIGNATURE


def predict_grpc(server: str, inputs: dict, model: str, version: int | None = None,
                 timeout: float = 120.0) -> dict[str, np.ndarray]:
    """One Predict call over gRPC, as tensorflow_serving/example/*_client.py do it."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_for(inputs)
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(server, options=options) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ClientError(f"{server}: {error.code().name}: {error.details()}") from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def predict_rest(server: str, inputs: dict, model: str, version: int | None = None,
                 timeout: float = 120.0) -> dict[str, np.ndarray]:
    """One predict call over TF Serving's REST API (row format, bytes as {"b64": ...})."""
    def jsonable(value):
        if isinstance(value, bytes):
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.tolist() if isinstance(value, np.ndarray) else value

    batch = len(next(iter(inputs.values())))
    instances = [{name: jsonable(value[i]) for name, value in inputs.items()} for i in range(batch)]
    url = f"http://{server}/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    body = json.dumps({"signature_name": signature_for(inputs), "instances": instances}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read()
    except urllib.error.HTTPError as error:
        raise ClientError(f"{url}: HTTP {error.code}: {error.read().decode('utf-8', 'replace')}") from None
    except urllib.error.URLError as error:
        raise ClientError(f"{url}: {error.reason}") from None
    # TF Serving writes string outputs not named "*_bytes" as raw bytes inside JSON strings.
    predictions = json.loads(text.decode("utf-8", "surrogateescape"))["predictions"]

    def restore(value):
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value

    outputs = {}
    for name in predictions[0]:
        rows = [restore(row[name]) for row in predictions]
        outputs[name] = np.array(rows, dtype=object) if isinstance(rows[0], bytes) else np.array(rows)
    return outputs


def tryon_png(outputs: dict, server: str) -> bytes:
    """The try-on PNG of the first example: `tryon_png_bytes`, or `tryon_png` of older exports."""
    name = next((name for name in (PNG_OUTPUT, OLD_PNG_OUTPUT) if name in outputs), None)
    if name is None:
        raise ClientError(f"{server}: the answer has no '{PNG_OUTPUT}' output (got {sorted(outputs)})")
    png = bytes(outputs[name][0])
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ClientError(f"{server}: '{name}' is not a PNG")
    return png


def run_client(args, inputs: dict[str, np.ndarray]) -> int:
    """Send INPUTS (the signature's tensors, batch of one) to args.server and write the PNG to args.out."""
    try:
        predict = predict_rest if args.rest else predict_grpc
        start = time.perf_counter()
        outputs = predict(args.server, inputs, args.model, args.version)
        seconds = time.perf_counter() - start
        png = tryon_png(outputs, args.server)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(png)
    except ClientError as error:
        print(f"viton-tf client: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(png)} bytes) in {seconds * 1000:.0f} ms via {'REST' if args.rest else 'gRPC'}")
    return 0
