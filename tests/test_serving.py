"""`viton-tf serve` and `viton-tf client` against a toy SavedModel with the try-on signature.

Two servers run as subprocesses for the module: "plain" (models toy and swap, no batching, bound
to 127.0.0.1 with a 1 s REST read timeout) and "batching" (toy with serving/batching-style
parameters, default host and timeout); the SIGTERM test stops the latter.
"""
from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import cv2
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving.client import predict_rest
from serving.config import read_batching_config, read_model_config
from serving.json_tensor import request_tensors, response_json
from serving.servables import max_message_bytes
from serving.status import ServingError
from serving_toy import AVAILABLE, Server, example_inputs, png, write_toy_model

REPO = Path(__file__).resolve().parents[1]
END = get_model_status_pb2.ModelVersionStatus.State.END
MAX_REQUEST_BYTES = 2_000_000  # room for one full-size real photo pair (the thin client sends them whole)
READ_TIMEOUT = 1.0  # the plain server's --rest-read-timeout


def _config(path: Path, models: dict[str, Path]) -> Path:
    entries = "".join(f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                      f'model_version_policy {{ latest {{ num_versions: 1 }} }} }}\n' for name, base in models.items())
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    write_toy_model(root / "toy" / "1", version=1, warmup_requests=3)
    write_toy_model(root / "swap" / "1", version=1, warmup_requests=1)
    write_toy_model(root / "swap" / ".tmp-2", version=2, warmup_requests=1)  # ignored until renamed
    batching = root / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 30000 }\n"
                        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 1 }\n")
    limit = ["--max-request-bytes", str(MAX_REQUEST_BYTES)]
    started = []  # every server started is stopped (SIGTERM, then SIGKILL by pid), whatever fails
    try:
        plain = Server(_config(root / "plain.config", {"toy": root / "toy", "swap": root / "swap"}),
                       root / "plain.log", limit + ["--host", "127.0.0.1", "--rest-read-timeout", str(READ_TIMEOUT)])
        started.append(plain)
        batched = Server(_config(root / "batched.config", {"toy": root / "toy"}), root / "batched.log",
                         limit + ["--batching-config", str(batching)])
        started.append(batched)
        plain.wait_ready("toy")
        plain.wait_ready("swap")
        batched.wait_ready("toy")
        plain.first_calls = int(plain.predict(example_inputs())["calls"][0])
        yield {"plain": plain, "batched": batched, "root": root}
    finally:
        for server in started:
            server.stop()


def _raw_http(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send DATA on a fresh connection and return all the server sends until it closes (or WAIT passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server may close while we still send; what it answered is still readable
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return answer


def _fetch(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A REST call the way any HTTP client makes it: plain urllib and json."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data),
                                    timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _listening_address(port: int) -> str:
    """The local address something listens on PORT with ("any" for every interface), from /proc/net."""
    for table in ("tcp", "tcp6"):
        for line in Path("/proc/net", table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if int(local_port, 16) != port or state != "0A":  # 0A: TCP_LISTEN
                continue
            if table == "tcp6" and address.startswith("0000000000000000FFFF0000"):  # ::ffff:a.b.c.d
                address = address[24:]
            if len(address) == 8:
                ipv4 = socket.inet_ntoa(bytes.fromhex(address)[::-1])
                return "any" if ipv4 == "0.0.0.0" else ipv4
            return "any" if int(address, 16) == 0 else address
    raise AssertionError(f"nothing listens on port {port}")


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_serving_imports_nothing_from_the_library_or_the_jobs():
    import ast

    for path in sorted((REPO / "serving").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in names if name.split(".")[0] in ("viton_tf", "training", "export")], path


def test_config_files_parse_as_tf_serving_protos(tmp_path):
    (model,) = read_model_config(REPO / "serving" / "models.config")
    assert (model.name, model.base_path, model.model_platform) == ("viton", "/models/viton", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 1
    options = read_batching_config(REPO / "serving" / "batching.config")
    assert (options.max_batch_size, options.batch_timeout_micros) == (8, 5000)
    bad = tmp_path / "bad.config"
    bad.write_text("max_batch_size { value: 8 }\nmax_batch_sise { value: 2 }\n")
    with pytest.raises(ValueError, match="bad.config.*max_batch_sise"):
        read_batching_config(bad)


def test_json_codec_follows_tf_serving_json_tensor():
    specs = {"image_bytes": tf.TensorSpec([None], tf.string), "k": tf.TensorSpec([None, 2], tf.float32)}
    rows = {"instances": [{"image_bytes": {"b64": "eHg="}, "k": [1, 2]}, {"image_bytes": "y", "k": [3, 4.5]}]}
    tensors, layout = request_tensors(rows, specs)
    assert layout == "row" and list(tensors["image_bytes"]) == [b"xx", b"y"]
    np.testing.assert_array_equal(tensors["k"], np.array([[1, 2], [3, 4.5]], np.float32))
    tensors, layout = request_tensors({"inputs": {"image_bytes": ["x"], "k": [[1, 2]], "other": 0}}, specs)
    assert layout == "columnar" and tensors["k"].shape == (1, 2)
    # json_tensor.cc's messages (a nested status in its ToString form), naming the element and the input
    errors = {"Failed to process element: 0 key: k of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
              "\"1\" Type: String is not of expected type: float": {"instances": [{"image_bytes": "x", "k": ["1", 2]}]},
              "Failed to process element: 1 key: k of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor "
              "size: 2 but got: 3":
                  {"instances": [{"image_bytes": "x", "k": [1, 2]}, {"image_bytes": "x", "k": [1, 2, 3]}]},
              "Missing named input: k in 'inputs' object.": {"inputs": {"image_bytes": ["x"]}},
              "Missing 'inputs' or 'instances' key": {}}
    for message, body in errors.items():
        with pytest.raises(ServingError) as caught:
            request_tensors(body, specs)
        assert caught.value.message == message
    outputs = {"tryon_png_bytes": np.array([b"\x89PNG"], dtype=object), "label": np.array([b"PNG"], dtype=object),
               "x": np.array([[0.1, 2.0, 1 / 3, 9e6, np.nan]], np.float32), "n": np.array([3], np.int64)}
    text = response_json(outputs, "row").decode()
    assert '"x":[0.1,2.0,0.333333343,9e+06,NaN]' in text  # WriteDecimal: 6 digits, 9 if they do not round-trip
    assert '"tryon_png_bytes":{"b64":"iVBORw=="}' in text and '"label":"PNG"' in text
    assert response_json({"label": np.array([b"a", b"b"], dtype=object)}, "columnar") == b'{"outputs":["a","b"]}'
    with pytest.raises(ServingError, match="Tensor name: n has inconsistent batch size: 2 expecting: 1"):
        response_json({"x": np.zeros([1]), "n": np.zeros([2])}, "row")


def test_warmup_requests_are_replayed_before_serving(servers):
    # The toy counts its calls: 3 warm-up records ran before the first user request.
    assert servers["plain"].first_calls == 4
    assert "toy:1: available (3 warm-up requests replayed)" in servers["plain"].log.read_text()


def test_bad_inputs_are_invalid_argument_naming_the_input(servers):
    server = servers["plain"]
    good = example_inputs()
    cases = {
        "person_image": dict(good, person_image=np.array([b"not an image"], dtype=object)),
        "keypoints": dict(good, keypoints=np.zeros((1, 17, 3), np.float32)),
        "cloth_image": {name: value for name, value in good.items() if name != "cloth_image"},
        "parse_image": dict(good, parse_image=np.array([b"x" * (MAX_REQUEST_BYTES + 1)], dtype=object)),
    }
    for name, inputs in cases.items():
        error = _error(lambda: server.predict(inputs))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.details())
        assert name in error.details()
    # Far past the limit, gRPC refuses the message before reading it.
    huge = dict(good, parse_image=np.array([b"x" * (max_message_bytes(MAX_REQUEST_BYTES) + 1)], dtype=object))
    assert _error(lambda: server.predict(huge)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # An INVALID_ARGUMENT raised inside the model keeps its code and the model's message.
    assert "person_image: not a JPEG or PNG image" in _error(lambda: server.predict(cases["person_image"])).details()
    outputs = server.predict(example_inputs(batch=2, seed=1.0))
    assert outputs["warped_cloth"].shape == (2, 8, 6, 3)
    np.testing.assert_allclose(outputs["keypoint_sum"], [53.0, 106.0])  # 53 values of seed + row (one is 0)
    assert tf.io.decode_png(outputs["tryon_png_bytes"][0]).shape == (8, 6, 3)


def test_unknown_model_or_version_is_not_found(servers):
    server = servers["plain"]
    for model, version in (("nope", None), ("toy", 7)):
        assert _error(lambda: server.predict(example_inputs(), model, version)).code() == grpc.StatusCode.NOT_FOUND
    assert _error(lambda: server.status("nope")).code() == grpc.StatusCode.NOT_FOUND
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy"
    response = server.predictions.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert sorted(signatures.signature_def["serving_default"].inputs) == [
        "cloth_image", "keypoints", "parse_image", "person_image"]
    assert server.predict(example_inputs())["version"][0] == 1.0


def test_unknown_signature_is_failed_precondition_over_grpc_and_400_over_rest(servers):
    server = servers["plain"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "nope"
    for name, value in example_inputs().items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    error = _error(lambda: server.predictions.Predict(request, timeout=60))
    # tensorflow_serving/servables/tensorflow/predict_util.cc RunPredict
    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                               'Serving signature key "nope" not found.')
    status, body = _fetch(server.rest_port, "/v1/models/toy:predict", {"signature_name": "nope", "instances": [1]})
    # http_rest_api_handler.cc GetInfoMap
    assert (status, body) == (400, {"error": 'Serving signature name: "nope" not found in signature def'})


def test_rest_answers_read_by_a_plain_tf_serving_client(servers):
    """What a client written for TF Serving does: json + base64, no project code."""
    port = servers["plain"].rest_port
    person = base64.b64encode(png(200)).decode()
    cloth = base64.b64encode(png(100)).decode()
    parse = base64.b64encode(png(5, channels=1)).decode()
    keypoints = [[1.0, 2.0, 0.5]] * 18
    instance = {"person_image": {"b64": person}, "cloth_image": {"b64": cloth}, "parse_image": {"b64": parse},
                "keypoints": keypoints}
    status, body = _fetch(port, "/v1/models/toy:predict", {"instances": [instance, instance]})
    assert status == 200 and len(body["predictions"]) == 2
    first = body["predictions"][0]
    image = tf.io.decode_png(base64.b64decode(first["tryon_png_bytes"]["b64"])).numpy()
    assert image.shape == (8, 6, 3) and abs(int(image[0, 0, 0]) - 150) <= 1
    assert first["person_magic"] == "PNG"  # a string output not named *_bytes is a raw JSON string
    assert first["keypoint_sum"] == pytest.approx(18 * 3.5)
    assert first["warped_cloth"][0][0] == pytest.approx([100 / 255 * 2 - 1] * 3, abs=1e-6)
    columnar = {"inputs": {name: [value] for name, value in instance.items()}}
    status, body = _fetch(port, "/v1/models/toy/versions/1:predict", columnar)
    assert status == 200 and set(body) == {"outputs"}
    assert body["outputs"]["person_magic"] == ["PNG"]
    assert base64.b64decode(body["outputs"]["tryon_png_bytes"][0]["b64"]).startswith(b"\x89PNG")
    # The model's own INVALID_ARGUMENT is a 400 with its message.
    broken = dict(instance, person_image={"b64": base64.b64encode(b"not an image").decode()})
    status, body = _fetch(port, "/v1/models/toy:predict", {"instances": [broken]})
    assert status == 400 and set(body) == {"error"} and "person_image: not a JPEG or PNG image" in body["error"]


def test_rest_http_limits_and_paths(servers):
    server = servers["plain"]
    port = server.rest_port
    post = "POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
    for length in ("-1", "abc", "1e3"):
        answer = _raw_http(port, f"{post}Content-Length: {length}\r\n\r\n{{}}".encode())
        assert answer.startswith(b"HTTP/1.1 400"), (length, answer[:200])
    # A body over the limit is refused from its Content-Length alone, before a byte of it is sent.
    answer = _raw_http(port, f"{post}Content-Length: {300 * 2**20}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    # A chunked body is read (a small one is answered), and refused once it passes the limit.
    def chunked(body: bytes, size: int) -> bytes:
        pieces = [body[i:i + size] for i in range(0, len(body), size)]
        return (f"{post}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
                + b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n")

    small = json.dumps({"instances": [{"person_image": {"b64": base64.b64encode(png(200)).decode()},
                                       "cloth_image": {"b64": base64.b64encode(png(100)).decode()},
                                       "parse_image": {"b64": base64.b64encode(png(5, channels=1)).decode()},
                                       "keypoints": [[0.0, 0.0, 0.0]] * 18}]}).encode()
    assert _raw_http(port, chunked(small, 100)).startswith(b"HTTP/1.1 200")
    answer = _raw_http(port, chunked(b" " * (max_message_bytes(MAX_REQUEST_BYTES) + 2**20), 65536))
    # 400, or a reset that drops it: the server closes as soon as the limit is passed.
    assert answer.startswith(b"HTTP/1.1 400") or answer == b"", answer[:200]
    for path in ("/", "/metrics", "/v2/models/toy", "/models/toy"):
        assert _fetch(port, path)[0] == 404, path
    status, body = _fetch(port, "/v1/nothing")
    assert (status, body) == (400, {"error": "Malformed request: GET /v1/nothing"})
    assert server.process.poll() is None


def test_rest_closes_idle_and_slow_connections(servers):
    port = servers["plain"].rest_port
    cases = {"idle": b"", "half-sent headers": b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n",
             "half-sent body": b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"}
    for name, data in cases.items():
        # READ_TIMEOUT is 1 s; 10 s is a bound a loaded machine meets, not the timeout itself.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            try:
                assert sock.recv(65536) == b"", name  # closed by the server, nothing answered
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError(f"{name}: the connection is still open after 10 s") from None


def test_host_option_binds_the_given_address(servers):
    if not Path("/proc/net/tcp").is_file():
        pytest.skip("needs Linux's /proc/net/tcp")
    plain, batched = servers["plain"], servers["batched"]
    assert _listening_address(plain.rest_port) == _listening_address(plain.grpc_port) == "127.0.0.1"
    assert _listening_address(batched.rest_port) == _listening_address(batched.grpc_port) == "any"


def test_rest_api(servers):
    server = servers["plain"]
    address = f"127.0.0.1:{server.rest_port}"
    inputs = example_inputs(batch=2, seed=0.5)
    over_rest = predict_rest(address, inputs, "toy")
    over_grpc = server.predict(inputs)
    assert over_rest["tryon_png_bytes"][1] == over_grpc["tryon_png_bytes"][1]  # PNG bytes survive {"b64": ...}
    assert list(over_rest["person_magic"]) == list(over_grpc["person_magic"]) == [b"PNG", b"PNG"]
    np.testing.assert_allclose(over_rest["warped_cloth"], over_grpc["warped_cloth"], atol=1e-6)

    def fetch(path: str, body: dict | None = None) -> tuple[int, dict]:
        return _fetch(server.rest_port, path, body)

    status, body = fetch("/v1/models/toy")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = fetch("/v1/models/toy/versions/1/metadata")
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and "keypoints" in signatures["serving_default"]["inputs"]
    assert fetch("/v1/models/nope:predict", {"instances": []})[0] == 404
    assert fetch("/v1/models/toy/versions/9")[0] == 404
    bad = {"instances": [{"person_image": {"b64": "@@@"}, "cloth_image": "x", "parse_image": "x",
                          "keypoints": [[0, 0, 0]] * 18}]}
    status, body = fetch("/v1/models/toy:predict", bad)
    assert status == 400 and "person_image" in body["error"]
    status, body = fetch("/v1/models/toy:predict", {"inputs": {"person_image": ["x"]}})
    assert (status, body) == (400, {"error": "Missing named input: cloth_image in 'inputs' object."})
    assert predict_rest(address, example_inputs(), "toy")["version"][0] == 1.0


def _client(server, tmp_path: Path, files: list[str], rest: bool, model: str = "toy") -> int:
    from viton_tf.cli import main

    port = server.rest_port if rest else server.grpc_port
    return main(["client", "--server", f"127.0.0.1:{port}", *files, "--out", str(tmp_path / f"out-{rest}.png"),
                 "--model", model] + (["--rest"] if rest else []))


def test_client_writes_the_png_over_grpc_and_rest(servers, tmp_path, monkeypatch):
    server = servers["plain"]
    for name, data in (("person.png", png(200)), ("cloth.png", png(100)), ("parse.png", png(5, channels=1))):
        (tmp_path / name).write_bytes(data)
    # Two people: the client sends the most confident one, as the dataset readers pick it.
    faint, confident = np.full((25, 3), 0.1, np.float32), np.full((25, 3), 0.9, np.float32)
    (tmp_path / "pose.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": faint.ravel().tolist()},
                                                               {"pose_keypoints_2d": confident.ravel().tolist()}]}))
    files = ["--person", str(tmp_path / "person.png"), "--cloth", str(tmp_path / "cloth.png"),
             "--parse", str(tmp_path / "parse.png"), "--keypoints", str(tmp_path / "pose.json")]
    for rest in (False, True):
        assert _client(server, tmp_path, files, rest) == 0
        image = tf.io.decode_png((tmp_path / f"out-{rest}.png").read_bytes()).numpy()
        assert image.shape == (8, 6, 3) and abs(int(image[0, 0, 0]) - 150) <= 1  # (200 + 100) / 2
    assert _client(server, tmp_path, files, rest=False, model="nope") == 1
    assert _client(server, tmp_path, files[:6], rest=False) == 2  # --parse without --keypoints
    sent = {}
    monkeypatch.setattr("serving.client.run_client", lambda args, inputs: sent.update(inputs) or 0)
    assert _client(server, tmp_path, files, rest=False) == 0
    np.testing.assert_allclose(sent["keypoints"], np.full((1, 18, 3), 0.9, np.float32))
    assert sent["person_image"][0] == png(200)


@pytest.fixture(scope="module")
def mediapipe_models():
    """The offline pose models `viton-tf prepare` uses, if this checkout has them (no download here)."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (setup.py installs it)")
    from viton_tf.errors import UserError
    from viton_tf.assets import model_path
    from viton_tf.prepare.folder import REQUIRED_MODELS

    try:
        return [model_path(name) for name in REQUIRED_MODELS]
    except UserError as error:
        pytest.skip(f"no MediaPipe models (`python -m viton_tf.assets`, or set VITON_ASSETS): {error}")


def test_client_with_just_the_two_photos_prepares_the_person_here(servers, shared_data, mediapipe_models,
                                                                 tmp_path, monkeypatch):
    person = sorted((shared_data / "real" / "person").glob("*.jpg"))[0]
    cloth = sorted((shared_data / "real" / "cloth").glob("*.jpg"))[0]
    files = ["--person", str(person), "--cloth", str(cloth)]
    for rest in (False, True):
        assert _client(servers["plain"], tmp_path, files, rest) == 0
        assert tf.io.decode_png((tmp_path / f"out-{rest}.png").read_bytes()).shape == (8, 6, 3)
    sent = {}
    monkeypatch.setattr("serving.client.run_client", lambda args, inputs: sent.update(inputs) or 0)
    assert _client(servers["plain"], tmp_path, files, rest=False) == 0
    assert sent["keypoints"].shape == (1, 18, 3) and (sent["keypoints"][0, :, 2] > 0).sum() >= 10  # a posed person
    parsing = tf.io.decode_png(sent["parse_image"][0]).numpy()
    person_image = tf.io.decode_image(sent["person_image"][0]).numpy()
    assert len(np.unique(parsing)) >= 4  # labels, not blank
    # The photo goes at its own size (the model resizes it; the layout answers at it), keypoints in its pixels.
    assert person_image.shape[:2] == cv2.imread(str(person)).shape[:2] and parsing.shape[:2] == (256, 192)
    assert sent["keypoints"][0, :, 0].max() > 192


def test_new_version_replaces_old_under_load_without_failures(servers):
    server, root = servers["plain"], servers["root"]
    failures, versions, lock = [], [], threading.Lock()
    halfway = threading.Barrier(9)

    def client(index: int) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
        done, after, deadline = 0, 0, time.monotonic() + 90
        # 25 requests on version 1, then at least 25 more while version 2 comes in, until this thread saw it.
        while done < 25 or after < 25 or (2.0 not in seen and time.monotonic() < deadline):
            if done == 25:
                halfway.wait()
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "swap"
            for name, value in example_inputs(seed=index).items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            try:
                version = tf.make_ndarray(stub.Predict(request, timeout=60).outputs["version"])[0]
                with lock:
                    versions.append(version)
            except grpc.RpcError as error:
                with lock:
                    failures.append(f"{error.code()}: {error.details()}")
            done += 1
            after += done > 25
            seen = set(versions[-64:])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    halfway.wait()
    slow = {}  # a request still running on version 1 while it is replaced
    slow_inputs = example_inputs()
    slow_inputs["keypoints"][0, 17, 2] = 6.0  # sleeps 5 s in version 1
    slow_thread = threading.Thread(target=lambda: slow.update(server.predict(slow_inputs, "swap")))
    slow_thread.start()
    time.sleep(0.2)
    (root / "swap" / ".tmp-2").rename(root / "swap" / "2")
    while not any(s.version == 2 and s.state == AVAILABLE for s in server.status("swap")):
        time.sleep(0.05)
    assert slow_thread.is_alive()  # version 2 took over while version 1 still had a request in flight
    for thread in threads + [slow_thread]:
        thread.join()
    assert failures == []
    assert len(versions) >= 400
    assert versions[0] == 1.0 and 2.0 in versions
    assert slow["version"][0] == 1.0
    deadline = time.monotonic() + 10
    while {s.version: s.state for s in server.status("swap")} != {2: AVAILABLE, 1: END}:
        assert time.monotonic() < deadline, server.status("swap")
        time.sleep(0.1)
    assert server.predict(example_inputs(), "swap")["version"][0] == 2.0


def test_a_broken_new_version_leaves_the_old_one_serving(servers):
    server, broken = servers["plain"], servers["root"] / "toy" / "5"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    try:
        deadline = time.monotonic() + 30
        while not any(s.version == 5 and s.state == END for s in server.status("toy")):
            assert time.monotonic() < deadline, server.status("toy")
            time.sleep(0.1)
        (failed,) = server.status("toy", 5)
        assert failed.status.error_code != 0 and failed.status.error_message
        assert server.status("toy", 1)[0].state == AVAILABLE
        assert server.predict(example_inputs())["version"][0] == 1.0
    finally:
        shutil.rmtree(broken)


def test_batching_splits_outputs_per_request(servers):
    server = servers["batched"]
    results, errors = {}, []
    start = threading.Barrier(8)

    def client(index: int) -> None:
        batch = 1 + index % 2
        inputs = example_inputs(batch=batch, seed=10.0 * index)
        if index == 7:  # a bad neighbour in the same batch fails alone
            inputs["person_image"] = np.array([b"broken"] * batch, dtype=object)
        for round_ in range(3):
            start.wait()
            try:
                results[index, round_] = server.predict(inputs)
            except grpc.RpcError as error:
                errors.append((index, error.code(), error.details()))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {index for index, _, _ in errors} == {7} and len(errors) == 3
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT and "person_image" in details for _, code, details in errors)
    for (index, _), outputs in results.items():
        batch = 1 + index % 2
        expected = [53.0 * (10.0 * index + row) for row in range(batch)]
        np.testing.assert_allclose(outputs["keypoint_sum"], expected)
        assert outputs["warped_cloth"].shape == (batch, 8, 6, 3)
    assert max(int(outputs["batch_size"][0]) for outputs in results.values()) > 2
    too_big = _error(lambda: server.predict(example_inputs(batch=9)))
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT and "maximum input batch size 8" in too_big.details()


def test_sigterm_finishes_in_flight_requests_closes_idle_connections_and_exits(servers):
    server = servers["batched"]
    slow_inputs = example_inputs()
    slow_inputs["keypoints"][0, 17, 2] = 4.0  # sleeps 3 s
    answers = {}
    grpc_thread = threading.Thread(target=lambda: answers.update(grpc=server.predict(slow_inputs)))
    rest_body = json.dumps({"instances": [{
        "person_image": {"b64": base64.b64encode(slow_inputs["person_image"][0]).decode()},
        "cloth_image": {"b64": base64.b64encode(slow_inputs["cloth_image"][0]).decode()},
        "parse_image": {"b64": base64.b64encode(slow_inputs["parse_image"][0]).decode()},
        "keypoints": slow_inputs["keypoints"][0].tolist()}]}).encode()
    rest = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    idle = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)  # sends nothing
    keep_alive = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    try:
        keep_alive.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert keep_alive.recv(65536).startswith(b"HTTP/1.1 200")  # and then stays open, idle
        grpc_thread.start()
        rest.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(rest_body), rest_body))
        time.sleep(1.5)  # both slow requests are running
        server.process.send_signal(signal.SIGTERM)
        # The server's read timeout is 30 s: only the shutdown can close these two.
        assert idle.recv(65536) == b"" and keep_alive.recv(65536) == b""
        answer = b""
        while chunk := rest.recv(65536):
            answer += chunk
    finally:
        for sock in (rest, idle, keep_alive):
            sock.close()
    assert server.process.wait(timeout=10) == 0  # a generous bound: the slow requests need 3 s each
    grpc_thread.join()
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"][0]["version"] == 1.0
    assert answers["grpc"]["version"][0] == 1.0
    assert "stopped" in server.log.read_text()
