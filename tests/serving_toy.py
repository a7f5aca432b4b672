"""Serving test support: `viton-tf serve` as a subprocess, and a toy SavedModel with the try-on
model's serving signature (for the serving tests and benchmarks before a real export exists).

Same input names, dtypes and shapes as viton_tf.tryon's `serving_default`; the work is
trivial but batched, and extra outputs let tests see what the server did:
`version` (which version answered), `calls` (a counter, so warm-up replays show),
`batch_size` (the batch the signature ran on), `keypoint_sum` (which request a row is) and
`person_magic` (a string output not named `*_bytes`, which TF Serving's REST writes as raw text).
The PNG output is `tryon_png_bytes`: TF Serving's REST base64-encodes a string output only when
its name ends in `_bytes`.
Keypoint 17's confidence above 1 makes the call sleep that many seconds minus one.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.python.data.experimental.ops import testing as data_testing
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc)

from serving.servables import WARMUP_FILE

REPO = Path(__file__).resolve().parents[1]
AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.AVAILABLE
SIZE = (8, 6)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode(images: tf.Tensor, name: str, channels: int) -> tf.Tensor:
    def one(data):
        is_image = tf.logical_or(tf.strings.substr(data, 0, 8) == PNG_MAGIC, tf.io.is_jpeg(data))
        check = tf.debugging.Assert(is_image, [f"{name}: not a JPEG or PNG image"])
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(data, channels=channels, expand_animations=False, name=f"{name}_decode")
        return tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), SIZE)
    return tf.map_fn(one, images, fn_output_signature=tf.TensorSpec(SIZE + (channels,), tf.float32))


class ToyTryOn(tf.Module):
    def __init__(self, version: int):
        super().__init__()
        self.version = tf.Variable(float(version), trainable=False)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="person_image"),
        tf.TensorSpec([None], tf.string, name="cloth_image"),
        tf.TensorSpec([None], tf.string, name="parse_image"),
        tf.TensorSpec([None, 18, 3], tf.float32, name="keypoints")])
    def serve(self, person_image, cloth_image, parse_image, keypoints):
        calls = self.calls.assign_add(1)
        micros = tf.cast(tf.maximum(tf.reduce_max(keypoints[:, 17, 2]) - 1.0, 0.0) * 1e6, tf.int64)
        slept = tf.data.Dataset.from_tensors(micros).apply(data_testing.sleep(micros)).reduce(
            tf.constant(0, tf.int64), lambda total, value: total + value)  # a sleep op that serialises
        with tf.control_dependencies([slept]):
            person = _decode(person_image, "person_image", 3)
        cloth = _decode(cloth_image, "cloth_image", 3)
        parse = _decode(parse_image, "parse_image", 1)
        tryon = tf.image.convert_image_dtype((person + cloth) / 2, tf.uint8, saturate=True)
        batch = tf.shape(keypoints)[0]
        return {
            "tryon_png_bytes": tf.map_fn(tf.io.encode_png, tryon, fn_output_signature=tf.string),
            "person_magic": tf.strings.substr(person_image, 1, 3),  # a text output: "PNG" for a PNG
            "warped_cloth": cloth * 2 - 1,
            "composition_mask": parse,
            "keypoint_sum": tf.reduce_sum(keypoints, axis=[1, 2]),
            "version": tf.fill([batch], self.version),
            "calls": tf.fill([batch], calls),
            "batch_size": tf.fill([batch], batch),
        }


def png(value: int, height: int = 16, width: int = 12, channels: int = 3) -> bytes:
    return tf.io.encode_png(tf.fill([height, width, channels], tf.constant(value, tf.uint8))).numpy()


def example_inputs(batch: int = 1, seed: float = 0.0) -> dict[str, np.ndarray]:
    keypoints = np.full((batch, 18, 3), seed, np.float32) + np.arange(batch, dtype=np.float32)[:, None, None]
    keypoints[:, 17, 2] = 0.0
    return {"person_image": np.array([png(200)] * batch, dtype=object),
            "cloth_image": np.array([png(100)] * batch, dtype=object),
            "parse_image": np.array([png(5, channels=1)] * batch, dtype=object),
            "keypoints": keypoints}


def write_toy_model(path: Path, version: int, warmup_requests: int = 3) -> Path:
    """Save the toy as a servable version folder `path` with a warm-up file of `warmup_requests`."""
    module = ToyTryOn(version)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    if warmup_requests:
        (Path(path) / WARMUP_FILE).parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(Path(path) / WARMUP_FILE)) as writer:
            for _ in range(warmup_requests):
                request = predict_pb2.PredictRequest()
                request.model_spec.signature_name = "serving_default"
                for name, value in example_inputs().items():
                    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
    return Path(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`viton-tf serve` in a subprocess on free localhost ports, with stubs to call it."""

    def __init__(self, config: Path, log: Path, extra_args: list[str] = ()):
        self.grpc_port, self.rest_port = _free_port(), _free_port()
        command = [sys.executable, "-m", "viton_tf.cli", "serve", "--model-config", str(config),
                   "--grpc-port", str(self.grpc_port), "--rest-port", str(self.rest_port),
                   "--poll-seconds", "0.2", *extra_args]
        self.log = log
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def wait_ready(self, model: str, timeout: float = 600) -> None:
        """Until MODEL is AVAILABLE; the bound is for a hung server (TF's import alone takes minutes on a busy
        machine), a server that exits fails at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            try:
                if self.status(model)[0].state == AVAILABLE:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-2000:]}")

    def status(self, model: str, version: int | None = None) -> list:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        return list(self.models.GetModelStatus(request, timeout=10).model_version_status)

    def predict(self, inputs: dict, model: str = "toy", version: int | None = None, **kwargs) -> dict:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self.predictions.Predict(request, timeout=60, **kwargs)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def stop(self) -> int:
        """SIGTERM, then SIGKILL (by pid) if it has not exited within a minute."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
