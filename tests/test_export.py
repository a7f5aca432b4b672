"""`viton-tf export`: the SavedModel version, run as TF Serving runs it (session path, warm-up, no XLA), served, refused, batched."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from export import export as export_job
from viton_tf.cli import main
from viton_tf.data.readers import read_keypoints_json, read_pairs
from viton_tf.errors import UserError
from viton_tf.run import tryon_module
from viton_tf.tryon import TryOnModule

REPO = Path(__file__).resolve().parents[1]
def _examples(world: Path):
    from viton_tf.data.readers import make_dataset

    return make_dataset(world, split="test", height=64, width=48).take(1).as_numpy_iterator()


def _pair_inputs(world: Path, index: int) -> tuple[dict, dict]:
    """Serving inputs (bytes, COCO-18 keypoints) of test pair `index`, and its files."""
    files = read_pairs(world, "vitonhd", "test")[index].files
    inputs = {"person_image": np.array([files["person"].read_bytes()], dtype=object),
              "cloth_image": np.array([files["cloth"].read_bytes()], dtype=object),
              "parse_image": np.array([files["parsing"].read_bytes()], dtype=object),
              "keypoints": read_keypoints_json(files["keypoints"])[None]}
    return inputs, files


def test_export_writes_a_tf_serving_version(exported, trained_run):
    version = exported / "1"
    assert sorted(p.name for p in exported.iterdir()) == ["1"]  # no staging folder left behind
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert json.loads((version / "assets" / "config.json").read_text()) == \
        json.loads((trained_run / "config.json").read_text())
    records = list(tf.data.TFRecordDataset(str(version / "assets.extra" / "tf_serving_warmup_requests")))
    requests = [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request for record in records]
    sizes = [request.inputs["keypoints"].tensor_shape.dim[0].size for request in requests]
    assert sizes == [1, 2, 4, 8, 4]  # allowed batch sizes of serving/batching.config, then one per category
    assert [request.model_spec.signature_name for request in requests] == ["serving_default"] * 4 + [
        "serving_category"]
    assert tf.make_ndarray(requests[-1].inputs["category"]).tolist() == [b"upper", b"lower", b"dress", b"upper"]
    shown = subprocess.run([str(REPO / ".venv/bin/saved_model_cli"), "show", "--all", "--dir", str(version)],
                           capture_output=True, text=True, check=True).stdout
    for signature in ("serving_default", "serving_category", "tryon_tensors"):
        assert f"signature_def['{signature}']" in shown
    for name in ("person_image", "cloth_image", "parse_image", "keypoints", "tryon_png_bytes", "warped_cloth",
                 "composition_mask", "parsing", "cloth_mask", "garment_mask", "coarse_person"):
        assert f"['{name}']" in shown, name


def test_served_answer_equals_in_process_answer(exported, trained_run, synthetic_world, tmp_path):
    from serving.client import ClientError, predict_grpc, predict_rest, run_client
    from serving_toy import Server

    inputs, files = _pair_inputs(synthetic_world, 1)  # not the warm-up pair
    module = tryon_module(trained_run)
    local = module.serving_default(**{name: tf.constant(value) for name, value in inputs.items()})
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "viton" base_path: "{exported}" '
                      'model_platform: "tensorflow" } }\n')
    server = Server(config, tmp_path / "serve.log")
    try:
        server.wait_ready("viton")
        served = predict_grpc(f"localhost:{server.grpc_port}", inputs, "viton")
        np.testing.assert_allclose(served["warped_cloth"], local["warped_cloth"].numpy(), atol=1e-4)
        np.testing.assert_allclose(served["composition_mask"], local["composition_mask"].numpy(), atol=1e-4)
        local_png = tf.io.decode_png(local["tryon_png_bytes"][0]).numpy().astype(int)
        # The PNG bytes over gRPC and over REST (base64, TF Serving's "_bytes" rule) are the in-process bytes.
        over_rest = predict_rest(f"localhost:{server.rest_port}", inputs, "viton")
        assert bytes(served["tryon_png_bytes"][0]) == bytes(over_rest["tryon_png_bytes"][0]) \
            == local["tryon_png_bytes"].numpy()[0]
        # The CLI client with the pair's OpenPose BODY_25 file gives the same readable PNG.
        args = argparse.Namespace(server=f"localhost:{server.grpc_port}", person=files["person"],
                                  cloth=files["cloth"], parse=files["parsing"], keypoints=files["keypoints"],
                                  out=tmp_path / "tryon.png", model="viton", version=None, rest=False)
        assert run_client(args, inputs) == 0
        written = tf.io.decode_png((tmp_path / "tryon.png").read_bytes()).numpy()
        assert written.shape == (64, 48, 3) and np.abs(written - local_png).max() <= 1
        assert "viton:1: available (5 warm-up requests replayed)" in server.log.read_text()
        # serving_category (the request carries a category): the served lower-body answer is the in-process one.
        lower = {**inputs, "category": np.array([b"lower"], dtype=object)}
        served = predict_grpc(f"localhost:{server.grpc_port}", lower, "viton")
        expected = module.serving_category(**{name: tf.constant(value) for name, value in lower.items()})
        assert bytes(served["tryon_png_bytes"][0]) == expected["tryon_png_bytes"].numpy()[0]
        assert served["category"].tolist() == [b"lower"]
        # A small JPEG whose header claims 20000x20000 is refused from its header: nothing is decoded.
        rss = lambda: int(next(line for line in open(f"/proc/{server.process.pid}/status")
                               if line.startswith("VmRSS")).split()[1]) // 1024
        before = rss()
        with pytest.raises(ClientError, match="INVALID_ARGUMENT.*person_image: image larger than the limit of 4096"):
            predict_grpc(f"localhost:{server.grpc_port}", {**inputs, "person_image": np.array(
                [_jpeg_claiming(20000, 20000)], dtype=object)}, "viton")
        assert rss() - before < 50  # MB
    finally:
        assert server.stop() == 0


def test_bfloat16_networks_stay_close_to_float32(trained_run, synthetic_world):
    from viton_tf.representation import person_representation

    example = next(iter(_examples(synthetic_world)))
    inputs = {"representation": person_representation(example["person"][None], example["parsing"][None],
                                                      example["keypoints"][None]),
              "cloth": tf.constant(example["cloth"][None])}
    full, low = (tryon_module(trained_run, precision=p) for p in ("float32", "bfloat16"))
    assert low.generator.compute_dtype == "bfloat16" and full.generator.compute_dtype == "float32"
    full_out, low_out = full.generator(inputs), low.generator(inputs)
    assert low_out["coarse_person"].dtype == tf.bfloat16
    difference = np.abs(full_out["coarse_person"].numpy() - tf.cast(low_out["coarse_person"], tf.float32).numpy())
    assert 0 < difference.max() < 0.05  # bfloat16 keeps 8 bits of mantissa: ~2^-8 relative
    with pytest.raises(UserError, match="precision: expected one of float32, bfloat16"):
        tryon_module(trained_run, precision="float16")


@pytest.mark.slow
def test_export_is_deterministic_and_never_publishes_a_failed_model(exported, trained_run, synthetic_world,
                                                                    monkeypatch):
    with monkeypatch.context() as here:  # a relative --out (make demo's) validates and publishes too
        here.chdir(exported.parent)
        assert main(["export", "--run", str(trained_run), "--out", exported.name, "--version", "2",
                     "--data", str(synthetic_world)]) == 0
    inputs = {k: tf.constant(v) for k, v in _pair_inputs(synthetic_world, 1)[0].items()}
    first, second = (tf.saved_model.load(str(exported / v)).signatures["serving_default"](**inputs) for v in "12")
    assert first["tryon_png_bytes"].numpy()[0] == second["tryon_png_bytes"].numpy()[0]
    np.testing.assert_array_equal(first["warped_cloth"], second["warped_cloth"])

    # A model whose fresh-process answer differs from the in-process one is not published.
    served_outputs = export_job.served_outputs

    def shifted(outputs):
        values = served_outputs(outputs)
        return {**values, "warped_cloth": values["warped_cloth"] + 0.5}
    monkeypatch.setattr(export_job, "served_outputs", shifted)
    with pytest.raises(UserError, match="not published: 'warped_cloth' differs .* by 0.5"):
        export_job.export(trained_run, exported, 3, synthetic_world)
    assert sorted(p.name for p in exported.iterdir()) == ["1", "2"]
    with pytest.raises(UserError, match="already exists"):
        export_job.export(trained_run, exported, 2, synthetic_world)
    shutil.rmtree(exported / "2")


def _session_answers(version: Path, work: Path) -> dict:
    """export/serving_check.py run as a script, in a process that never imports viton_tf (PYTHONPATH cleared)."""
    out = work / f"session-{version.parent.name}-{version.name}.npz"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run([sys.executable, str(REPO / "export" / "serving_check.py"), str(version), str(out)],
                   check=True, capture_output=True, env=env, cwd=work)
    with np.load(out, allow_pickle=True) as answers:
        return {key: answers[key] for key in answers.files}


@pytest.fixture(scope="module")
def exported_nonparametric(synthetic_world, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("nonparametric") / "run"
    assert main(["train", "--method", "nonparametric", "--data", str(synthetic_world), "--out", str(run),
                 "--height", "64", "--width", "48"]) == 0
    base = run.parent / "models" / "nonparametric"
    assert main(["export", "--run", str(run), "--out", str(base), "--version", "1",
                 "--data", str(synthetic_world)]) == 0
    return base


@pytest.mark.parametrize("model", ["exported", "exported_nonparametric"])
def test_tf_servings_session_path_replays_the_warmup_and_answers_as_tf_saved_model_load(model, request, tmp_path):
    version = request.getfixturevalue(model) / "1"
    answers = _session_answers(version, tmp_path)
    assert json.loads(str(answers["must_compile"])) == []  # stock TF Serving runs it without XLA flags
    signatures = tf.saved_model.load(str(version)).signatures
    records = list(tf.data.TFRecordDataset(str(version / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == 5  # serving_default at each batch size, then serving_category
    for index, record in enumerate(records):
        request_proto = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        serve = signatures[request_proto.model_spec.signature_name]
        expected = serve(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request_proto.inputs.items()})
        assert set(expected) == {key.split("/")[1] for key in answers if key.startswith(f"{index}/")
                                 and ":" not in key}
        for name, value in expected.items():
            if name.endswith("_bytes") or value.dtype == tf.string:
                assert list(answers[f"{index}/{name}"]) == list(value.numpy())  # byte-identical PNGs, names
            else:
                np.testing.assert_allclose(answers[f"{index}/{name}"], value.numpy(), atol=1e-5, err_msg=name)


def test_the_xla_export_marks_must_compile_functions_and_the_default_does_not(trained_run, synthetic_world,
                                                                                tmp_path):
    base = tmp_path / "viton"
    assert main(["export", "--run", str(trained_run), "--out", str(base), "--version", "1", "--xla",
                 "--data", str(synthetic_world)]) == 0
    assert json.loads(str(_session_answers(base / "1", tmp_path)["must_compile"]))  # the scan can fail


def _jpeg_claiming(height: int, width: int) -> bytes:
    """A small real JPEG whose SOF header claims height x width."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_an_oversize_image_is_refused_from_its_header_before_decoding(synthetic_world):
    module = TryOnModule(64, 48, method="nonparametric")
    inputs = {name: tf.constant(value) for name, value in _pair_inputs(synthetic_world, 0)[0].items()}
    for name in ("person_image", "cloth_image", "parse_image"):
        huge = {**inputs, name: tf.constant([_jpeg_claiming(20000, 20000)])}
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name}: image larger than the limit of 4096"):
            module.serving_default(**huge)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cloth_image: not a JPEG or PNG"):
        module.serving_default(**{**inputs, "cloth_image": tf.constant([b"GIF89a not a photo"])})


def test_an_examples_answer_does_not_depend_on_what_it_is_batched_with(exported, synthetic_world):
    serve = tf.saved_model.load(str(exported / "1")).signatures["serving_default"]
    pairs = [_pair_inputs(synthetic_world, i)[0] for i in range(4)]
    batch = {name: np.concatenate([pairs[i % 4][name] for i in (1, 2, 3, 0, 2, 3, 1, 2)]) for name in pairs[0]}
    alone = serve(**{name: tf.constant(value) for name, value in pairs[0].items()})
    batched = serve(**{name: tf.constant(value) for name, value in batch.items()})
    png = lambda outputs, i: tf.io.decode_png(outputs["tryon_png_bytes"][i]).numpy().astype(int)
    assert np.abs(png(alone, 0) - png(batched, 3)).max() <= 1
    np.testing.assert_allclose(alone["warped_cloth"][0], batched["warped_cloth"][3], atol=1e-4)
