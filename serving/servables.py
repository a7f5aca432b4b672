"""Model versions on disk -> loaded, warmed-up servables, as TF Serving's ServerCore manages them.

A model's base path holds one folder per version (integer names; anything else is ignored, so
an export can write to `.tmp-*` and rename). The version policy picks which to serve; a new
version is loaded and warmed up before the one it replaces is unloaded, and an unloading version
keeps running the requests that already hold it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2

from serving.batching import Batcher
from serving.config import BatchOptions
from serving.status import ServingError, from_exception, invalid_argument, not_found

log = logging.getLogger("viton-tf.serve")
Tensors = dict[str, np.ndarray]
State = get_model_status_pb2.ModelVersionStatus.State
DEFAULT_SIGNATURE = "serving_default"
# TF Serving's warm-up file, inside a version folder (export/export.py writes it from this name;
# export/serving_check.py, standalone by design, spells it out).
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc


def max_message_bytes(max_request_bytes: int) -> int:
    """The largest REST body or gRPC message read at all: the tensors' own limit (checked per input, so the
    error names it) plus room for base64 and JSON around them; anything larger is refused unread."""
    return 2 * max_request_bytes + (1 << 20)


def _nbytes(value: np.ndarray) -> int:
    if value.dtype == object:
        return sum(len(item) for item in value.reshape(-1))
    return value.nbytes


class Signature:
    """One signature of a loaded version: checks request tensors against it and runs them."""

    def __init__(self, name: str, function, batching: BatchOptions | None, max_request_bytes: int, label: str):
        self.name = name
        self._function = function
        self.inputs: dict[str, tf.TensorSpec] = function.structured_input_signature[1]
        self._max_request_bytes = max_request_bytes
        self.batcher = Batcher(self._run, batching, f"{label}-{name}") if batching else None

    def check(self, inputs: Tensors) -> int:
        """The batch size of `inputs`, or INVALID_ARGUMENT naming the input that does not fit."""
        expected, given = set(self.inputs), set(inputs)
        if expected != given:
            missing = ", ".join(sorted(expected - given)) or "none"
            extra = ", ".join(sorted(given - expected)) or "none"
            raise invalid_argument(f"signature '{self.name}' takes inputs {sorted(expected)}; "
                                   f"missing: {missing}; unknown: {extra}")
        sizes = {name: _nbytes(value) for name, value in inputs.items()}
        if sum(sizes.values()) > self._max_request_bytes:
            largest = max(sizes, key=sizes.get)
            raise invalid_argument(f"request is {sum(sizes.values())} bytes, more than the server's limit of "
                                   f"{self._max_request_bytes}; its largest input is '{largest}' "
                                   f"({sizes[largest]} bytes)")
        batch = {}
        for name, spec in self.inputs.items():
            value = inputs[name]
            want = np.dtype(object) if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)
            if value.dtype != want:
                raise invalid_argument(f"input '{name}' has dtype {_dtype_name(value.dtype)}; signature "
                                       f"'{self.name}' expects {spec.dtype.name}")
            if not spec.shape.is_compatible_with(value.shape):
                raise invalid_argument(f"input '{name}' has shape {list(value.shape)}; signature '{self.name}' "
                                       f"expects {_shape_text(spec.shape)}")
            if value.ndim:
                batch[name] = value.shape[0]
        if len(set(batch.values())) > 1:
            raise invalid_argument(f"inputs disagree on the batch size: {batch}")
        return next(iter(batch.values()), 1)

    def __call__(self, inputs: Tensors, batched: bool = True) -> Tensors:
        size = self.check(inputs)
        if self.batcher is not None and batched:
            return self.batcher(inputs, size)
        return self._run(inputs)

    def _run(self, inputs: Tensors) -> Tensors:
        tensors = {name: tf.constant(value, dtype=self.inputs[name].dtype) for name, value in inputs.items()}
        return {name: value.numpy() for name, value in self._function(**tensors).items()}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


def _dtype_name(dtype: np.dtype) -> str:
    return "string" if dtype == object else tf.as_dtype(dtype).name


def _shape_text(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("batch" if i == 0 and d is None else ("any" if d is None else str(d))
                           for i, d in enumerate(shape.as_list())) + "]" if shape.rank is not None else "any shape"


def tensors_from_protos(protos) -> Tensors:
    """TensorProto map -> numpy, naming the input that cannot be read."""
    tensors = {}
    for name, proto in protos.items():
        try:
            tensors[name] = tf.make_ndarray(proto)
        except Exception as error:  # malformed TensorProto: wrong content size, unknown dtype, ...
            raise invalid_argument(f"input '{name}' is not a valid TensorProto: {error}") from None
    return tensors


class Version:
    """One version folder: loads, warms up, serves while AVAILABLE, unloads when no request holds it."""

    def __init__(self, model: str, number: int, path: Path):
        self.model = model
        self.number = number
        self.path = path
        self.state = State.START
        self.error: ServingError | None = None
        self.signatures: dict[str, Signature] = {}
        self.signature_defs = {}
        self._loaded = None
        self.stamp = _stamp(path)  # a failed version is retried only once its files change
        self._in_flight = 0
        self._idle = threading.Condition()

    def load(self, batching: BatchOptions | None, max_request_bytes: int) -> None:
        self.state = State.LOADING
        label = f"{self.model}:{self.number}"
        try:
            meta_graph = saved_model_pb2.SavedModel.FromString((self.path / "saved_model.pb").read_bytes())
            graph = next((g for g in meta_graph.meta_graphs if "serve" in g.meta_info_def.tags), None)
            if graph is None:
                raise ValueError(f"{self.path}: no MetaGraph tagged 'serve'")
            self.signature_defs = {name: sig for name, sig in graph.signature_def.items()
                                   if not name.startswith("__")}
            self._loaded = tf.saved_model.load(str(self.path), tags=["serve"])
            self.signatures = {name: Signature(name, function, batching, max_request_bytes, label)
                               for name, function in self._loaded.signatures.items()}
            count = self._warm_up()
        except Exception as error:
            self.close()
            self.state = State.END
            self.error = from_exception(error)
            log.error("%s: failed to load %s: %s", label, self.path, self.error.message)
            return
        self.state = State.AVAILABLE
        log.info("%s: available (%d warm-up requests replayed)", label, count)

    def _warm_up(self) -> int:
        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warm-up records")
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if entry.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"{path}: record {count} is a {entry.WhichOneof('log_type')}; "
                                 "only predict_log warm-up records are supported")
            request = entry.predict_log.request
            signature = self.signature(request.model_spec.signature_name)
            try:
                signature(tensors_from_protos(request.inputs), batched=False)
            except ServingError as error:
                raise ValueError(f"{path}: warm-up record {count} failed: {error.message}") from None
        return count

    def signature(self, name: str) -> Signature:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:  # predict_util.cc RunPredict
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"Serving signature key \"{name}\" not found.")
        return self.signatures[name]

    def acquire(self) -> None:
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def unload(self) -> None:
        """Wait for the requests holding this version, then drop it."""
        self.state = State.UNLOADING
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
        self.close()
        self.state = State.END
        log.info("%s:%d: unloaded", self.model, self.number)

    def close(self) -> None:
        for signature in self.signatures.values():
            signature.close()
        self.signatures = {}
        self._loaded = None

    def status_proto(self) -> get_model_status_pb2.ModelVersionStatus:
        status = get_model_status_pb2.ModelVersionStatus(version=self.number, state=self.state)
        status.status.SetInParent()  # TF Serving always reports it, "OK" when there is no error
        if self.error is not None:
            status.status.error_code = self.error.code.value[0]
            status.status.error_message = self.error.message
        return status


def _stamp(path: Path) -> float:
    try:
        return max((path / "saved_model.pb").stat().st_mtime, path.stat().st_mtime)
    except OSError:
        return path.stat().st_mtime if path.exists() else 0.0


def version_folders(base_path: Path) -> dict[int, Path]:
    """A model base path's version folders by number: integer names only, as TF Serving reads them."""
    try:
        entries = list(base_path.iterdir())
    except OSError:
        return {}
    return {int(entry.name): entry for entry in entries if entry.name.isdigit() and entry.is_dir()}


def _wanted(config, on_disk: dict[int, Path]) -> set[int]:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(on_disk)
    if kind == "specific":
        return set(policy.specific.versions) & set(on_disk)
    count = policy.latest.num_versions if kind == "latest" else 1
    return set(sorted(on_disk)[-max(count, 1):])


class ModelManager:
    """Every configured model's versions; `reconcile` brings them in line with the base paths."""

    def __init__(self, configs, batching: BatchOptions | None, max_request_bytes: int):
        self._configs = {config.name: config for config in configs}
        self._batching = batching
        self._max_request_bytes = max_request_bytes
        self._versions: dict[str, dict[int, Version]] = {name: {} for name in self._configs}
        self._lock = threading.Lock()
        self._unloading: list[threading.Thread] = []
        self._warned: set[str] = set()

    def reconcile(self) -> None:
        for name, config in self._configs.items():
            base_path = Path(config.base_path)
            on_disk = version_folders(base_path)
            wanted = _wanted(config, on_disk)
            known = self._versions[name]
            for number in sorted(wanted):
                current = known.get(number)
                if current is not None and current.state != State.END:
                    continue
                if current is not None and current.error is not None and current.stamp == _stamp(current.path):
                    continue  # failed to load, and unchanged since
                version = Version(name, number, on_disk[number])
                with self._lock:
                    known[number] = version
                version.load(self._batching, self._max_request_bytes)
            if not on_disk and name not in self._warned:
                log.warning("%s: no versions found under base path %s", name, base_path)
                self._warned.add(name)
            # Availability first (TF Serving's AvailabilityPreservingPolicy): an old version is unloaded
            # only once a wanted one is serving, so a new version that fails to load changes nothing.
            if not any(known[n].state == State.AVAILABLE for n in wanted if n in known):
                continue
            for number, version in list(known.items()):
                if version.state == State.AVAILABLE and number not in wanted:
                    with self._lock:  # no new request can take it after this
                        version.state = State.UNLOADING
                    thread = threading.Thread(target=version.unload, name=f"unload-{name}-{number}")
                    thread.start()
                    self._unloading.append(thread)

    @contextlib.contextmanager
    def version(self, name: str, number: int | None = None, label: str | None = None) -> Iterator[Version]:
        """Hold a servable version for the length of one request (the newest one by default)."""
        with self._lock:
            if name not in self._configs:
                raise not_found(f"Servable not found for request: {_request_text(name, number, label)}")
            number = self._labelled(name, number, label)
            available = {n: v for n, v in self._versions[name].items() if v.state == State.AVAILABLE}
            if number is None and available:
                number = max(available)
            version = available.get(number)
            if version is None:
                raise not_found(f"Servable not found for request: {_request_text(name, number, label)}")
            version.acquire()
        try:
            yield version
        finally:
            version.release()

    def _labelled(self, name: str, number: int | None, label: str | None) -> int | None:
        """The version number a version label names (TF Serving's version_labels); `number` without one."""
        if not label:
            return number
        labels = self._configs[name].version_labels
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def status(self, name: str, number: int | None = None, label: str | None = None) -> list:
        with self._lock:
            if name not in self._configs:
                raise not_found(f"Could not find any versions of model {name}")
            number = self._labelled(name, number, label)
            versions = self._versions[name]
            if number is not None:
                if number not in versions:
                    raise not_found(f"Could not find version {number} of model {name}")
                return [versions[number].status_proto()]
            if not versions:
                raise not_found(f"Could not find any versions of model {name}")
            return [versions[n].status_proto() for n in sorted(versions, reverse=True)]

    def close(self) -> None:
        """Unload everything once its in-flight requests are done."""
        for versions in self._versions.values():
            for version in versions.values():
                if version.state == State.AVAILABLE:
                    version.unload()
        for thread in self._unloading:
            thread.join()


def _request_text(name: str, number: int | None, label: str | None) -> str:
    if label:
        return f"Labeled({name}, {label})"
    return f"Latest({name})" if number is None else f"Specific({name}, {number})"

