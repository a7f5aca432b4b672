"""`viton-tf serve`: a local model server speaking TF Serving's gRPC and REST APIs.

It reads TF Serving's own config files and serves with the generated stubs of
tensorflow-serving-api, so a client written against it works unchanged against
tensorflow_model_server, and a model it serves, TF Serving serves too.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
    prediction_service_pb2_grpc)

from serving.config import read_batching_config, read_model_config  # noqa: E402
from serving.rest import RestServer  # noqa: E402
from serving.servables import ModelManager, max_message_bytes, tensors_from_protos  # noqa: E402
from serving.status import from_exception, invalid_argument  # noqa: E402

log = logging.getLogger("viton-tf.serve")
SHUTDOWN_GRACE_SECONDS = 120


def _answer(context, handle):
    """Run one RPC; any failure becomes a status for the client, never a crash of the server."""
    try:
        return handle()
    except Exception as error:
        status = from_exception(error)
        if status.code == grpc.StatusCode.INTERNAL:
            log.exception("request failed")
        context.abort(status.code, status.message)


def _version_request(spec) -> tuple[int | None, str | None]:
    return (spec.version.value if spec.HasField("version") else None), (spec.version_label or None)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request, context):
        def handle():
            number, label = _version_request(request.model_spec)
            with self._manager.version(request.model_spec.name, number, label) as version:
                signature = version.signature(request.model_spec.signature_name)
                outputs = signature(tensors_from_protos(request.inputs))
            unknown = sorted(set(request.output_filter) - set(outputs))
            if unknown:
                raise invalid_argument(f"output tensor alias not found in signature: {unknown[0]}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version.number
            response.model_spec.signature_name = signature.name
            for name, value in outputs.items():
                if not request.output_filter or name in request.output_filter:
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response
        return _answer(context, handle)

    def GetModelMetadata(self, request, context):
        def handle():
            fields = list(request.metadata_field)
            if not fields:
                raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            if fields != ["signature_def"]:
                raise invalid_argument(f"Metadata field {[f for f in fields if f != 'signature_def'][0]} "
                                       "is not supported")
            number, label = _version_request(request.model_spec)
            with self._manager.version(request.model_spec.name, number, label) as version:
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for key, value in version.signature_defs.items():
                    signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version.number
            response.metadata["signature_def"].Pack(signature_map)
            return response
        return _answer(context, handle)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request, context):
        def handle():
            number, label = _version_request(request.model_spec)
            return get_model_status_pb2.GetModelStatusResponse(
                model_version_status=self._manager.status(request.model_spec.name, number, label))
        return _answer(context, handle)


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address in brackets


def _poll(manager: ModelManager, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds):
        try:
            manager.reconcile()
        except Exception:  # a broken base path must not stop the watch
            log.exception("polling the model base paths failed")


def run_server(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        configs = read_model_config(args.model_config)
        batching = read_batching_config(args.batching_config) if args.batching_config else None
    except ValueError as error:
        print(f"viton-tf serve: error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    manager = ModelManager(configs, batching, args.max_request_bytes)
    manager.reconcile()  # like tensorflow_model_server: load first, then open the ports

    # TF Serving lifts gRPC's 4 MiB limit to 2 GiB; here a message past the request limit's margin is refused
    # (RESOURCE_EXHAUSTED) before it is read, and one within it gets INVALID_ARGUMENT naming its largest input.
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=[
        ("grpc.max_receive_message_length", max_message_bytes(args.max_request_bytes)),
        ("grpc.max_send_message_length", 2**31 - 1)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), grpc_server)
    rest_server = None
    try:
        grpc_server.add_insecure_port(f"{_grpc_host(args.host)}:{args.grpc_port}")
        if args.rest_port is not None:
            rest_server = RestServer(args.host, args.rest_port, manager, args.max_request_bytes,
                                     args.rest_read_timeout)
    except (OSError, RuntimeError) as error:
        print(f"viton-tf serve: error: cannot listen on the gRPC/REST port: {error}", file=sys.stderr)
        manager.close()
        return 2
    grpc_server.start()
    threads = [threading.Thread(target=_poll, args=(manager, args.poll_seconds, stop), name="poll")]
    for thread in threads:
        thread.start()
    if rest_server is not None:
        rest_server.start()
    log.info("serving gRPC on %s port %d%s; models: %s", args.host, args.grpc_port,
             f", REST on port {args.rest_port}" if rest_server else "", ", ".join(c.name for c in configs))

    while not stop.wait(0.5):
        pass
    log.info("shutting down: finishing the requests in flight")
    grpc_done = grpc_server.stop(SHUTDOWN_GRACE_SECONDS)  # refuses new RPCs at once
    if rest_server is not None:
        rest_server.stop(SHUTDOWN_GRACE_SECONDS)  # and closes idle connections
    grpc_done.wait()
    for thread in threads:
        thread.join()
    manager.close()
    log.info("stopped")
    return 0
