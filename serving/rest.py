"""TF Serving's REST API on tornado: predict, model status and model metadata.

tornado's HTTPServer does the HTTP: it rejects a malformed or too large Content-Length (and a
chunked body past the limit) with 400 before reading the body, closes connections that stay idle
or send their headers or body too slowly, and on shutdown stops listening, lets the requests in
flight finish, then closes every connection.

The JSON <-> tensor mapping is serving/json_tensor.py (TF Serving's json_tensor.cc).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from concurrent import futures

import grpc
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.json_tensor import request_tensors, response_json
from serving.servables import DEFAULT_SIGNATURE, ModelManager, max_message_bytes
from serving.status import ServingError, from_exception, invalid_argument

log = logging.getLogger("viton-tf.serve")
# tensorflow_serving/model_servers/http_rest_api_util.h kHTTPRestApiHandlerPathRegex: TF Serving's REST
# handler takes these paths (a malformed one is a 400 with {"error": ...}); any other path is a 404.
API_PATHS = r"(?i)/v1/.*"
# http_rest_api_handler.cc ParseModelInfo.
PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                  r"(?::(classify|regress|predict))?(?:/(metadata))?", re.IGNORECASE)


def _proto_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class RestApi:
    """What the REST handler answers, without HTTP: (status code, JSON body) for a method, path and body."""

    def __init__(self, manager: ModelManager):
        self.manager = manager

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return 200, self._handle(method, path, body)
        except Exception as error:
            failure = from_exception(error)
            if not isinstance(error, ServingError):
                log.exception("rest: %s %s failed", method, path)
            return failure.http_status, json.dumps({"error": failure.message}).encode()

    def _handle(self, method: str, path: str, body: bytes) -> bytes:
        match = PATH.fullmatch(path)
        if not match or not match.group(1):
            raise invalid_argument(f"Malformed request: {method} {path}")
        name, number, label, verb, metadata = match.groups()
        number = int(number) if number else None
        if method == "GET" and not verb:
            if metadata:
                return self._metadata(name, number, label)
            response = get_model_status_pb2.GetModelStatusResponse(
                model_version_status=self.manager.status(name, number, label))
            return json.dumps(_proto_json(response), indent=1).encode()
        if method == "POST" and verb == "predict" and not metadata:
            return self._predict(name, number, label, body)
        if method == "POST" and verb in ("classify", "regress") and not metadata:
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{verb} is not served; use predict")
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _predict(self, name, number, label, data: bytes) -> bytes:
        try:
            body = json.loads(data.decode("utf-8", "surrogateescape"))
        except ValueError as error:
            raise invalid_argument(f"JSON Parse error: {error}") from None
        if not isinstance(body, dict):
            raise invalid_argument(f"JSON Value: {json.dumps(body)[:256]} Is not object")
        with self.manager.version(name, number, label) as version:
            signature_name = body.get("signature_name", "")
            if not isinstance(signature_name, str):
                raise invalid_argument(f"JSON Value: {json.dumps(signature_name)[:256]} not formatted correctly. "
                                       "'signature_name' key must be a string value.")
            signature_name = signature_name or DEFAULT_SIGNATURE
            if signature_name not in version.signatures:  # http_rest_api_handler.cc GetInfoMap
                raise invalid_argument(f"Serving signature name: \"{signature_name}\" not found in signature def")
            signature = version.signature(signature_name)
            inputs, layout = request_tensors(body, signature.inputs)
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


class _ApiHandler(tornado.web.RequestHandler):
    """Any method on a /v1/ path: the answer is computed on a worker thread, off the event loop."""

    def initialize(self, server: "RestServer"):
        self.server = server

    def compute_etag(self):  # no ETag / 304: TF Serving answers every GET in full
        return None

    async def _respond(self) -> None:
        self.server.enter()
        try:
            if self.server.draining:
                status, body = 503, json.dumps({"error": "the server is shutting down"}).encode()
                self.set_header("Connection", "close")
            else:
                status, body = await asyncio.get_running_loop().run_in_executor(
                    self.server.executor, self.server.api.answer, self.request.method, self.request.path,
                    self.request.body)
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            await self.finish(body)
        except tornado.iostream.StreamClosedError:
            pass  # the client went away; nothing to answer
        finally:
            self.server.leave()

    get = post = put = delete = patch = _respond


class _NotFoundHandler(tornado.web.RequestHandler):
    def prepare(self):
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": f"Not Found: {self.request.path}"}))


class RestServer:
    """TF Serving's REST API on a tornado HTTPServer, with its event loop on its own thread."""

    def __init__(self, host: str, port: int, manager: ModelManager, max_request_bytes: int,
                 read_timeout: float, workers: int = 32):
        self.api = RestApi(manager)
        self.executor = futures.ThreadPoolExecutor(workers, thread_name_prefix="rest")
        self.draining = False
        self._in_flight = 0
        self._idle = threading.Condition()
        self._sockets = tornado.netutil.bind_sockets(port, address=host or None)  # fails here, not later
        self._limit = max_message_bytes(max_request_bytes)
        self._read_timeout = read_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="rest")
        self._started = threading.Event()
        self._http = None

    def enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = tornado.web.Application([(API_PATHS, _ApiHandler, {"server": self})],
                                      default_handler_class=_NotFoundHandler,
                                      log_function=lambda handler: log.debug(
                                          "rest: %d %s %s", handler.get_status(), handler.request.method,
                                          handler.request.uri))
        self._http = tornado.httpserver.HTTPServer(
            app, idle_connection_timeout=self._read_timeout,  # also the time allowed for the headers
            body_timeout=self._read_timeout, max_body_size=self._limit, max_buffer_size=self._limit + (1 << 20))
        self._http.add_sockets(self._sockets)
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self, grace_seconds: float) -> None:
        """Stop listening, let the requests in flight finish (up to the grace), close every connection."""
        async def stop_listening():
            self.draining = True
            self._http.stop()

        asyncio.run_coroutine_threadsafe(stop_listening(), self._loop).result()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace_seconds)
        asyncio.run_coroutine_threadsafe(self._http.close_all_connections(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self.executor.shutdown()
