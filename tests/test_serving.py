"""`viton-tf serve` and `viton-tf client` against a toy SavedModel with the try-on signature.

Two servers run as subprocesses for the module: "plain" (models toy and swap, no batching) and
"batching" (toy with serving/batching-style parameters); the SIGTERM test stops the latter.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving.client import BODY25_TO_COCO18, predict_rest, read_openpose_keypoints, run_client
from serving.config import read_batching_config, read_model_config
from serving_toy import AVAILABLE, Server, example_inputs, png, write_toy_model

REPO = Path(__file__).resolve().parents[1]
END = get_model_status_pb2.ModelVersionStatus.State.END
MAX_REQUEST_BYTES = 100_000


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
    plain = Server(_config(root / "plain.config", {"toy": root / "toy", "swap": root / "swap"}), root / "plain.log",
                   limit)
    batched = Server(_config(root / "batched.config", {"toy": root / "toy"}), root / "batched.log",
                     limit + ["--batching-config", str(batching)])
    try:
        plain.wait_ready("toy")
        plain.wait_ready("swap")
        batched.wait_ready("toy")
        plain.first_calls = int(plain.predict(example_inputs())["calls"][0])
        yield {"plain": plain, "batched": batched, "root": root}
    finally:
        for server in (plain, batched):
            server.stop()


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


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


def test_openpose_body25_is_mapped_to_coco18(tmp_path):
    body25 = np.arange(75, dtype=np.float32).reshape(25, 3)
    (tmp_path / "b25.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}))
    (tmp_path / "c18.json").write_text(json.dumps({"people": [{"pose_keypoints": body25[:18].ravel().tolist()}]}))
    mapped = read_openpose_keypoints(tmp_path / "b25.json")
    assert mapped.shape == (18, 3)
    np.testing.assert_array_equal(mapped[8], body25[9])  # COCO r_hip is BODY_25 joint 9 (8 is mid-hip)
    np.testing.assert_array_equal(mapped, body25[list(BODY25_TO_COCO18)])
    np.testing.assert_array_equal(read_openpose_keypoints(tmp_path / "c18.json"), body25[:18])


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
    outputs = server.predict(example_inputs(batch=2, seed=1.0))
    assert outputs["warped_cloth"].shape == (2, 8, 6, 3)
    np.testing.assert_allclose(outputs["keypoint_sum"], [53.0, 106.0])  # 53 values of seed + row (one is 0)
    assert tf.io.decode_png(outputs["tryon_png"][0]).shape == (8, 6, 3)


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


def test_rest_api(servers):
    server = servers["plain"]
    address = f"localhost:{server.rest_port}"
    inputs = example_inputs(batch=2, seed=0.5)
    over_rest = predict_rest(address, inputs, "toy")
    over_grpc = server.predict(inputs)
    assert over_rest["tryon_png"][1] == over_grpc["tryon_png"][1]  # raw PNG bytes survive TF Serving's JSON
    np.testing.assert_allclose(over_rest["warped_cloth"], over_grpc["warped_cloth"], atol=1e-6)

    def fetch(path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"http://{address}{path}", data=data)) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

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
    assert status == 400 and "keypoints" in body["error"]
    assert predict_rest(address, example_inputs(), "toy")["version"][0] == 1.0


def test_client_writes_the_png_over_grpc_and_rest(servers, tmp_path):
    server = servers["plain"]
    for name, data in (("person.png", png(200)), ("cloth.png", png(100)), ("parse.png", png(5, channels=1))):
        (tmp_path / name).write_bytes(data)
    body25 = np.zeros((25, 3), np.float32)
    (tmp_path / "pose.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}))
    for rest, port in ((False, server.grpc_port), (True, server.rest_port)):
        args = argparse.Namespace(server=f"localhost:{port}", person=tmp_path / "person.png",
                                  cloth=tmp_path / "cloth.png", parse=tmp_path / "parse.png",
                                  keypoints=tmp_path / "pose.json", out=tmp_path / f"out-{rest}.png",
                                  model="toy", version=None, rest=rest)
        assert run_client(args) == 0
        image = tf.io.decode_png((tmp_path / f"out-{rest}.png").read_bytes()).numpy()
        assert image.shape == (8, 6, 3) and abs(int(image[0, 0, 0]) - 150) <= 1  # (200 + 100) / 2
    args.model = "nope"
    assert run_client(args) == 1


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


def test_sigterm_finishes_in_flight_requests_and_exits_0(servers):
    server = servers["batched"]
    slow_inputs = example_inputs()
    slow_inputs["keypoints"][0, 17, 2] = 3.0  # sleeps 2 s
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(server.predict(slow_inputs)))
    thread.start()
    time.sleep(0.7)
    server.process.send_signal(signal.SIGTERM)
    thread.join()
    assert answer["version"][0] == 1.0
    assert server.process.wait(timeout=60) == 0
    assert "stopped" in server.log.read_text()
